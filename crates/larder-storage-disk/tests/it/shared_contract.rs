use super::*;

#[tokio::test]
async fn the_storage_contract_holds() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path(), 64 << 20);
    contract::run_all(disk, "contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_holds_while_the_start_up_load_runs_and_with_tinyufo() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DiskConfig::new(dir.path(), 64 << 20);
    config.eviction = larder_storage_disk::Eviction::TinyUfo;
    config.sync = larder_storage_disk::SyncPolicy::Always;
    let disk = open_with(config);
    contract::run_all(disk, "tinyufo").await;
}
