use handoff_executor::Runtime;
#[test]
fn smoke() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let v = rt.block_on(async {
        let mut hs = Vec::new();
        for i in 0..1000u64 {
            hs.push(handoff_executor::spawn(async move { i }));
        }
        let mut s = 0;
        for h in hs {
            s += h.await.unwrap();
        }
        s
    });
    assert_eq!(v, 999 * 1000 / 2);
    println!("{:?}", rt.metrics());
}
