//! The shared vocabulary of the engine, the policy and the adapters: modes, operations, rule
//! families and rule descriptions. A leaf module: it imports nothing of the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a rule does when it finds a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    Enforce,
    /// Allow, with a warning that kubectl prints.
    Warn,
    /// Do not check.
    Off,
}

impl Mode {
    /// The lowercase name used in config, reports and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The admission operation being evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The name the API server uses (`CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "CREATE" => Ok(Operation::Create),
            "UPDATE" => Ok(Operation::Update),
            "DELETE" => Ok(Operation::Delete),
            "CONNECT" => Ok(Operation::Connect),
            _ => Err(format!(
                "unknown operation {s:?}: expected CREATE, UPDATE, DELETE or CONNECT"
            )),
        }
    }
}

/// A rule family; mutation is switched per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Resources,
    Tolerations,
    Security,
    Spec,
    Selector,
    Rollout,
    Health,
    Platform,
    Priority,
    Image,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Resources => "resources",
            Family::Tolerations => "tolerations",
            Family::Security => "security",
            Family::Spec => "spec",
            Family::Selector => "selector",
            Family::Rollout => "rollout",
            Family::Health => "health",
            Family::Platform => "platform",
            Family::Priority => "priority",
            Family::Image => "image",
        }
    }
}

/// Static description of a rule, shown by `daemonset-guard rules`, in SARIF and in docs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub family: Family,
    pub default_mode: Mode,
    /// Whether the API server itself rejects a violation (its own object validation). Such a
    /// violation never reaches a validating webhook, so only `/mutate` can put this rule's
    /// message in front of the user.
    pub api_server_rejects: bool,
    /// What it checks, one sentence.
    pub summary: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// How to fix a violation.
    pub fix: &'static str,
}
