//! The keyvalue operations as Redis commands on one (reconnecting)
//! connection: `GET`/`SET`/`DEL`/`EXISTS`, `SCAN` for list-keys, `INCRBY`,
//! `MGET`/`MSET`/`DEL` for batches.

use bytes::Bytes;
use redis::aio::ConnectionManager;
use trellis_keyvalue_provider::{Bucket, KeyPage};

/// A failed command; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Redis refused the command, or could not be reached.
    #[error("Redis {command} on {url} failed: {source}")]
    Command {
        /// The command.
        command: &'static str,
        /// The server (password hidden).
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// `INCRBY` takes a signed 64-bit delta.
    #[error("increment delta {0} is larger than Redis's INCRBY accepts (i64::MAX)")]
    DeltaTooLarge(u64),
    /// The counter went negative (another writer used DECRBY).
    #[error("`{key}` holds {value}, which is not a u64 counter")]
    NegativeCounter {
        /// The key.
        key: String,
        /// Its value.
        value: i64,
    },
}

/// A Redis database reached through a shared connection.
#[derive(Clone)]
pub struct Database {
    conn: ConnectionManager,
    url: String,
    page_size: usize,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// `conn` to `url` (redacted, for messages); `page_size` is the `SCAN
    /// COUNT` hint.
    pub fn new(conn: ConnectionManager, url: String, page_size: usize) -> Self {
        Self {
            conn,
            url,
            page_size,
        }
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        command: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|source| RedisError::Command {
                command,
                url: self.url.clone(),
                source,
            })
    }
}

impl Bucket for Database {
    type Error = RedisError;

    /// `GET key`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, RedisError> {
        let value: Option<Vec<u8>> = self.query("GET", redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    /// `SET key value`.
    async fn set(&self, key: &str, value: Bytes) -> Result<(), RedisError> {
        self.query("SET", redis::cmd("SET").arg(key).arg(value.as_ref()))
            .await
    }

    /// `DEL key`.
    async fn delete(&self, key: &str) -> Result<(), RedisError> {
        let _removed: u64 = self.query("DEL", redis::cmd("DEL").arg(key)).await?;
        Ok(())
    }

    /// `EXISTS key`.
    async fn exists(&self, key: &str) -> Result<bool, RedisError> {
        let count: u64 = self.query("EXISTS", redis::cmd("EXISTS").arg(key)).await?;
        Ok(count > 0)
    }

    /// `SCAN cursor COUNT page_size`: the Redis cursor is the page cursor.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, RedisError> {
        let (next, keys): (u64, Vec<String>) = self
            .query(
                "SCAN",
                redis::cmd("SCAN")
                    .arg(cursor.unwrap_or(0))
                    .arg("COUNT")
                    .arg(self.page_size),
            )
            .await?;
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    /// `INCRBY key delta`: atomic in Redis; absent counts as 0.
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, RedisError> {
        let signed = i64::try_from(delta).map_err(|_| RedisError::DeltaTooLarge(delta))?;
        let value: i64 = self
            .query("INCRBY", redis::cmd("INCRBY").arg(key).arg(signed))
            .await?;
        u64::try_from(value).map_err(|_| RedisError::NegativeCounter {
            key: key.to_string(),
            value,
        })
    }

    /// `MGET keys…`, paired with the keys; `None` for absent ones.
    async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Bytes)>>, RedisError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> =
            self.query("MGET", redis::cmd("MGET").arg(&keys)).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, Bytes::from(v))))
            .collect())
    }

    /// `MSET key value …` (atomic in Redis).
    async fn set_many(&self, entries: Vec<(String, Bytes)>) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MSET");
        for (key, value) in &entries {
            cmd.arg(key).arg(value.as_ref());
        }
        self.query("MSET", &cmd).await
    }

    /// `DEL keys…`.
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), RedisError> {
        if keys.is_empty() {
            return Ok(());
        }
        let _removed: u64 = self.query("DEL", redis::cmd("DEL").arg(&keys)).await?;
        Ok(())
    }
}
