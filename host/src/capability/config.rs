//! `wasi:config/store@0.2.0-draft`: a component reads the merged values of the
//! named configs it was started with. The host refreshes the merge whenever one
//! of those configs changes in `CONFIGDATA`, so new invocations see new values.

use super::bindings::wasi::config::store::{Error, Host};
use crate::runtime::InvocationState;

impl Host for InvocationState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
