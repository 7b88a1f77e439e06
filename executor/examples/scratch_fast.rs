use handoff_executor::bridge::{enter, Call, Exit};
use std::time::Instant;
fn main() {
    let rt = handoff_executor::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    for _ in 0..5 {
        let n = 2_000_000u32;
        let t = Instant::now();
        let mut s = 0i64;
        for _ in 0..n {
            s += unsafe { libc::getpid() } as i64;
        }
        let raw = t.elapsed().as_nanos() as f64 / n as f64;
        let (ours, fast) = rt.block_on(async move {
            handoff_executor::spawn(async move {
                let t = Instant::now();
                let mut s = 0i64;
                let mut fast = 0;
                for _ in 0..n {
                    match enter(Call::Short) {
                        Some(c) => {
                            s += unsafe { libc::getpid() } as i64;
                            if c.exit() == Exit::Fast {
                                fast += 1;
                            }
                        }
                        None => {
                            s += unsafe { libc::getpid() } as i64;
                        }
                    }
                }
                std::hint::black_box(s);
                (t.elapsed().as_nanos() as f64 / n as f64, fast)
            })
            .await
            .unwrap()
        });
        std::hint::black_box(s);
        println!(
            "raw {raw:.1} ns  bridged {ours:.1} ns  ratio {:.3} fast={fast}/{n}",
            ours / raw
        );
    }
    println!("{:?}", rt.metrics());
}
