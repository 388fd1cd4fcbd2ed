//! Whether the draft config can start: validation, then the model pre-flight (build the nets, run two items
//! through them). The pre-flight builds networks, so its result is cached per (model, data shape).

use crate::config::{ModelConfig, RunConfig};
use crate::data::{expected_shape, ItemShape};
use crate::models::{preflight, NetSummary};

/// The networks' sizes, or why the config cannot start.
type Verdict = Result<Vec<NetSummary>, String>;

#[derive(Default)]
pub struct LaunchCheck {
    checked: Option<(RunConfig, Verdict)>,
    preflight: Option<((ModelConfig, ItemShape), Verdict)>,
}

impl LaunchCheck {
    /// The networks' sizes when `config` can start, else why not. Cheap when the config did not change.
    pub fn check(&mut self, config: &RunConfig) -> &Verdict {
        if self.checked.as_ref().is_none_or(|(checked, _)| checked != config) {
            let result = self.run(config);
            self.checked = Some((config.clone(), result));
        }
        &self.checked.as_ref().expect("just checked").1
    }

    fn run(&mut self, config: &RunConfig) -> Verdict {
        config.validate().map_err(|e| e.to_string())?;
        let shape = expected_shape(&config.data)?;
        let key = (config.model.clone(), shape);
        match &self.preflight {
            Some((cached, result)) if *cached == key => result.clone(),
            _ => {
                let result = preflight(&config.model, shape);
                self.preflight = Some((key, result.clone()));
                result
            }
        }
    }
}
