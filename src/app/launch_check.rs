//! Whether the draft config can start: validation, the pre-flight estimate (memory and time, refused when it
//! does not fit the memory available), then the model check (build the nets, run two items through them).
//! The model check builds networks, so its result is cached per (model, data shape).

use crate::config::{ModelConfig, RunConfig};
use crate::data::{expected_shape, ItemShape};
use crate::footprint::Footprint;
use crate::models::{preflight, NetSummary};

/// What a config that can start will cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Launchable {
    pub networks: Vec<NetSummary>,
    pub footprint: Footprint,
}

/// What the config costs, or why it cannot start.
pub type Verdict = Result<Launchable, String>;

/// The networks' sizes, or why the model cannot be built for its data.
type ModelCheck = Result<Vec<NetSummary>, String>;

#[derive(Default)]
pub struct LaunchCheck {
    checked: Option<(RunConfig, Verdict)>,
    preflight: Option<((ModelConfig, ItemShape), ModelCheck)>,
}

impl LaunchCheck {
    /// What `config` costs when it can start, else why not. Cheap when the config did not change.
    pub fn check(&mut self, config: &RunConfig) -> &Verdict {
        if self.checked.as_ref().is_none_or(|(checked, _)| checked != config) {
            let result = self.run(config).map_err(|e| crate::errors::without_backtrace(&e));
            self.checked = Some((config.clone(), result));
        }
        &self.checked.as_ref().expect("just checked").1
    }

    fn run(&mut self, config: &RunConfig) -> Verdict {
        config.validate().map_err(|e| e.to_string())?;
        let footprint = Footprint::checked(config)?;
        let shape = expected_shape(&config.data)?;
        let key = (config.model.clone(), shape);
        let networks = match &self.preflight {
            Some((cached, result)) if *cached == key => result.clone(),
            _ => {
                let result = preflight(&config.model, shape);
                self.preflight = Some((key, result.clone()));
                result
            }
        }?;
        Ok(Launchable { networks, footprint })
    }
}
