//! `ponger`: exports `example:pong/pingpong`. Linked to by `pinger`, on the
//! same host or anywhere in the lattice.

wit_bindgen::generate!({
    path: "../wit/pong",
    world: "ponger",
});

use std::sync::atomic::{AtomicU32, Ordering};

use exports::example::pong::pingpong::{EchoRequest, Guest};

/// Upper bound of `echo`'s `times`.
const MAX_TIMES: u32 = 100;
/// Upper bound of `work`'s `ms`.
const MAX_WORK_MS: u32 = 60_000;

struct Ponger;

/// Calls this instance has answered (instance state: starts at 0 in every
/// fresh instance).
static ANSWERED: AtomicU32 = AtomicU32::new(0);

fn answer() -> u32 {
    ANSWERED.fetch_add(1, Ordering::Relaxed) + 1
}

impl Guest for Ponger {
    fn ping() -> String {
        answer();
        "pong".to_string()
    }

    fn answered() -> u32 {
        answer()
    }

    fn echo(req: EchoRequest) -> Result<Vec<String>, String> {
        answer();
        if req.times > MAX_TIMES {
            return Err(format!("times must be at most {MAX_TIMES}, got {}", req.times));
        }
        let tags = req.tags.join(",");
        Ok((0..req.times)
            .map(|i| format!("{i}:{}[{tags}]", req.message))
            .collect())
    }

    fn work(ms: u32) -> u32 {
        answer();
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
