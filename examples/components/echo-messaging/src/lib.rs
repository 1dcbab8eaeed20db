//! `echo-messaging`: a `wasmcloud:messaging@0.2.0` handler, as wasmCloud's
//! echo-messaging example. Every message that has a reply-to subject is
//! answered there with the same body (`consumer.publish`). Messages without
//! one are dropped.
//!
//! One extra for trying the capability's rules: a body `forward:SUBJECT`
//! publishes `forwarded` to `SUBJECT` and answers `forwarded to SUBJECT`, or
//! the publish error (e.g. for a subject with wildcards).

wit_bindgen::generate!({
    path: "wit",
    world: "echo-messaging",
    generate_all,
});

use exports::wasmcloud::messaging::handler::Guest;
use wasmcloud::messaging::consumer;
use wasmcloud::messaging::types::BrokerMessage;

struct Echo;

impl Guest for Echo {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let Some(reply_to) = msg.reply_to else {
            return Ok(());
        };
        let body = match std::str::from_utf8(&msg.body)
            .ok()
            .and_then(|b| b.strip_prefix("forward:"))
        {
            Some(subject) => {
                let forwarded = consumer::publish(&BrokerMessage {
                    subject: subject.to_string(),
                    body: b"forwarded".to_vec(),
                    reply_to: None,
                });
                match forwarded {
                    Ok(()) => format!("forwarded to {subject}").into_bytes(),
                    Err(e) => format!("error: {e}").into_bytes(),
                }
            }
            None => msg.body,
        };
        consumer::publish(&BrokerMessage {
            subject: reply_to,
            body,
            reply_to: None,
        })
    }
}

export!(Echo);
