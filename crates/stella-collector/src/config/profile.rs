use std::fmt;
use std::str::FromStr;

/// A complete config built into the binary; a user's `--config` overlays one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// OTLP in on loopback, resource detection and batching, OTLP JSON lines under `<data-dir>/export/`.
    #[default]
    Default,
    /// Like `default`, keeping raw length-prefixed protobuf records.
    Forensic,
    /// File export only: protobuf, zstd, size rotation.
    Airgap,
}

impl Profile {
    /// Every profile, in documentation order.
    pub const ALL: [Profile; 3] = [Profile::Default, Profile::Forensic, Profile::Airgap];

    /// The profile's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Forensic => "forensic",
            Profile::Airgap => "airgap",
        }
    }

    /// The profile's YAML.
    pub fn yaml(self) -> &'static str {
        match self {
            Profile::Default => include_str!("profiles/default.yaml"),
            Profile::Forensic => include_str!("profiles/forensic.yaml"),
            Profile::Airgap => include_str!("profiles/airgap.yaml"),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not a built-in profile.
#[derive(Debug, thiserror::Error)]
#[error("unknown profile {0:?}; choose default, forensic or airgap")]
pub struct UnknownProfile(String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Profile::ALL.into_iter().find(|profile| profile.name() == text).ok_or_else(|| UnknownProfile(text.to_string()))
    }
}
