//! `qos`: placeholder until the scenario lands.

use crate::Args;

pub fn run(_args: &Args) -> Result<serde_json::Value, String> {
    Err("the qos scenario is not implemented yet".into())
}
