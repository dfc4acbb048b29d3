use std::fmt;

/// What makes a path unsafe as a relative path inside an archive or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// A component is `..`.
    Traversal,
    /// An empty or `.` component, a backslash or a control character.
    NotNormalized,
    /// The name is not UTF-8.
    NotUtf8,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "the path is empty",
            PathProblem::Absolute => "absolute paths are not allowed",
            PathProblem::Traversal => "a `..` component could leave the directory",
            PathProblem::NotNormalized => "empty or `.` components, backslashes and control characters are not allowed",
            PathProblem::NotUtf8 => "the name is not UTF-8",
        })
    }
}

/// Accepts only relative, `/`-separated, normal paths.
pub(crate) fn check_relative_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    for component in path.split('/') {
        if component == ".." {
            return Err(PathProblem::Traversal);
        }
        let odd_character = component.chars().any(|character| character == '\\' || character.is_control());
        if component.is_empty() || component == "." || odd_character {
            return Err(PathProblem::NotNormalized);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PathProblem, check_relative_path};

    #[test]
    fn only_normal_relative_paths_pass() {
        assert_eq!(check_relative_path("otlp/traces.pb"), Ok(()));
        assert_eq!(check_relative_path("bin/stella"), Ok(()));
        assert_eq!(check_relative_path(""), Err(PathProblem::Empty));
        assert_eq!(check_relative_path("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(check_relative_path("../x"), Err(PathProblem::Traversal));
        assert_eq!(check_relative_path("a/../../x"), Err(PathProblem::Traversal));
        for odd in ["a//b", "./a", "a/", "a\\..\\b", "a\nb"] {
            assert_eq!(check_relative_path(odd), Err(PathProblem::NotNormalized), "{odd:?}");
        }
    }
}
