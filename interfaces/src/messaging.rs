//! NATS subject rules for messaging: where wildcards are allowed (in
//! subscriptions, as whole tokens, `>` last) and where not (publish, request,
//! reply-to), and the `subscriptions` link config of wasmCloud's
//! messaging-nats provider (`subject` or `subject|queue`, comma-separated).
//! Shared by the host's built-in `messaging-nats` and the messaging provider, so
//! both refuse exactly the same subjects. Pure: no I/O.

/// Why a subject or a `subscriptions` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// Empty subject, or an empty token (`a..b`, leading or trailing `.`).
    #[error("subject `{0}` is empty or has an empty token (`..`, or a leading or trailing `.`)")]
    EmptyToken(String),
    /// Whitespace or a control character.
    #[error("subject `{0}` contains whitespace, which NATS subjects cannot")]
    Whitespace(String),
    /// A wildcard where a concrete subject is required.
    #[error(
        "subject `{0}` contains a wildcard (`*` or `>`): messages are published to a concrete subject; wildcards only belong in subscriptions"
    )]
    WildcardNotAllowed(String),
    /// `*`/`>` inside a token, or `>` before the last token.
    #[error(
        "subscription subject `{0}` misuses a wildcard: `*` and `>` must be whole tokens and `>` must be the last one (e.g. `orders.*.created`, `orders.>`)"
    )]
    BadWildcard(String),
    /// A queue group name that NATS would not accept.
    #[error(
        "queue group `{queue}` of subscription `{subject}` must be one token without whitespace or wildcards"
    )]
    BadQueue {
        /// The subject.
        subject: String,
        /// The queue group.
        queue: String,
    },
}

/// One subscription from link config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subscription {
    /// Subject, wildcards allowed.
    pub subject: String,
    /// Queue group, if any (`subject|queue`).
    pub queue: Option<String>,
}

fn tokens(subject: &str) -> Result<std::str::Split<'_, char>, SubjectError> {
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::Whitespace(subject.to_string()));
    }
    if subject.is_empty() || subject.split('.').any(str::is_empty) {
        return Err(SubjectError::EmptyToken(subject.to_string()));
    }
    Ok(subject.split('.'))
}

/// A subject to publish or request on: concrete, no wildcards.
pub fn check_publish_subject(subject: &str) -> Result<(), SubjectError> {
    if tokens(subject)?.any(|t| t.contains(['*', '>'])) {
        return Err(SubjectError::WildcardNotAllowed(subject.to_string()));
    }
    Ok(())
}

/// A subject to subscribe to: wildcards as whole tokens, `>` only last.
pub fn check_subscribe_subject(subject: &str) -> Result<(), SubjectError> {
    let all: Vec<&str> = tokens(subject)?.collect();
    let last = all.len().saturating_sub(1);
    for (i, t) in all.iter().enumerate() {
        let wildcard = *t == "*" || (*t == ">" && i == last);
        if t.contains(['*', '>']) && !wildcard {
            return Err(SubjectError::BadWildcard(subject.to_string()));
        }
    }
    Ok(())
}

/// Parses the `subscriptions` value: `subject[|queue]` entries separated by
/// commas, blanks ignored. Every bad entry is reported; the good ones are
/// returned too, so one typo does not silence the others.
pub fn parse_subscriptions(value: &str) -> (Vec<Subscription>, Vec<SubjectError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (subject, queue) = match entry.split_once('|') {
            Some((s, q)) => (s.trim(), Some(q.trim())),
            None => (entry, None),
        };
        if let Err(e) = check_subscribe_subject(subject) {
            bad.push(e);
            continue;
        }
        if let Some(q) = queue
            && (q.is_empty() || q.contains(['.', '*', '>']) || q.chars().any(char::is_whitespace))
        {
            bad.push(SubjectError::BadQueue {
                subject: subject.to_string(),
                queue: q.to_string(),
            });
            continue;
        }
        good.push(Subscription {
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
        });
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subjects_are_concrete() {
        assert!(check_publish_subject("orders.created").is_ok());
        assert!(check_publish_subject("_INBOX.abc.def").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a b", "orders.*", "orders.>", "a*"] {
            assert!(check_publish_subject(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            check_publish_subject("orders.*"),
            Err(SubjectError::WildcardNotAllowed(_))
        ));
    }

    #[test]
    fn subscription_wildcards_follow_nats_rules() {
        for ok in ["a", "a.*", "a.*.c", "a.>", ">", "*", "*.b.>"] {
            assert!(check_subscribe_subject(ok).is_ok(), "{ok:?}");
        }
        for bad in ["a.>.c", "a*", "a.b*", "a.>x", "", "a..b", "a b"] {
            assert!(check_subscribe_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_the_subscriptions_list() {
        let (good, bad) = parse_subscriptions(" echo.> , jobs|workers,, bad.>.x, q|a.b ");
        assert_eq!(
            good,
            vec![
                Subscription {
                    subject: "echo.>".into(),
                    queue: None
                },
                Subscription {
                    subject: "jobs".into(),
                    queue: Some("workers".into())
                },
            ]
        );
        assert_eq!(bad.len(), 2, "{bad:?}");
    }
}
