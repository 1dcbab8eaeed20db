//! `ponger`: exports `example:pong/pingpong`. Linked to by `pinger`, on the
//! same host or anywhere in the lattice.

wit_bindgen::generate!({
    path: "../wit/pong",
    world: "ponger",
});

use exports::example::pong::pingpong::{EchoRequest, Guest};

/// Upper bound of `echo`'s `times`.
const MAX_TIMES: u32 = 100;
/// Upper bound of `work`'s `ms`.
const MAX_WORK_MS: u32 = 60_000;

struct Ponger;

impl Guest for Ponger {
    fn ping() -> String {
        "pong".to_string()
    }

    fn echo(req: EchoRequest) -> Result<Vec<String>, String> {
        if req.times > MAX_TIMES {
            return Err(format!("times must be at most {MAX_TIMES}, got {}", req.times));
        }
        let tags = req.tags.join(",");
        Ok((0..req.times)
            .map(|i| format!("{i}:{}[{tags}]", req.message))
            .collect())
    }

    fn work(ms: u32) -> u32 {
        let ms = ms.min(MAX_WORK_MS);
        let start = std::time::Instant::now();
        let mut spins: u64 = 0;
        while start.elapsed().as_millis() < u128::from(ms) {
            spins = spins.wrapping_add(1);
            std::hint::black_box(spins);
        }
        ms
    }
}

export!(Ponger);
