//! Transforms created through the admin API, as a compacted log folds them: key the name (JSON
//! string), value the configuration (JSON), a tombstone for a deleted one.

use std::collections::BTreeMap;

use crate::config::TransformConfig;
use crate::kafka::log::Fold;

#[derive(Debug, Default)]
pub struct Stored {
    pub transforms: BTreeMap<String, TransformConfig>,
}

impl Fold for Stored {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let name: String = serde_json::from_slice(key).map_err(|e| format!("unreadable transform key: {e}"))?;
        match value {
            None => {
                self.transforms.remove(&name);
            }
            Some(value) => {
                let config: TransformConfig =
                    serde_json::from_slice(value).map_err(|e| format!("unreadable transform {name}: {e}"))?;
                if config.name != name {
                    return Err(format!("transform record {name} names {}", config.name));
                }
                self.transforms.insert(name, config);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_create_replace_and_delete_transforms_and_bad_ones_are_skipped() {
        let config = |output: &str| TransformConfig {
            name: "ship".into(),
            inputs: vec!["in".into()],
            output: output.into(),
            plugins: vec![],
            on_plugin_error: Default::default(),
            dead_letter_topic: None,
            exactly_once: true,
            max_batch: 500,
            max_wait_ms: 20,
        };
        let mut state = Stored::default();
        let key = serde_json::to_vec("ship").unwrap();
        state.apply(&key, Some(&serde_json::to_vec(&config("a")).unwrap())).unwrap();
        state.apply(&key, Some(&serde_json::to_vec(&config("b")).unwrap())).unwrap();
        assert_eq!(state.transforms["ship"].output, "b");
        assert!(
            state
                .apply(&serde_json::to_vec("other").unwrap(), Some(&serde_json::to_vec(&config("c")).unwrap()))
                .is_err()
        );
        assert!(state.apply(&key, Some(b"{}")).is_err());
        assert_eq!(state.transforms["ship"].output, "b");
        state.apply(&key, None).unwrap();
        assert!(state.transforms.is_empty());
    }
}
