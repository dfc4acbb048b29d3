use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

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
    /// The name is taken by the signed manifest of the set (`manifest.json`, `manifest.dsse.json`).
    Reserved,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "the path is empty",
            PathProblem::Absolute => "absolute paths are not allowed",
            PathProblem::Traversal => "a `..` component could leave the directory",
            PathProblem::NotNormalized => "empty or `.` components, backslashes and control characters are not allowed",
            PathProblem::NotUtf8 => "the name is not UTF-8",
            PathProblem::Reserved => "manifest.json and manifest.dsse.json are the names of the signed manifest",
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

/// A path of `paths` that cannot be a file beside `path` in one directory tree: a directory of `path` (`bin`
/// for `bin/stella`), or a path inside `path` (`bin/stella` for `bin`).
pub(crate) fn nesting_conflict<'a, V>(paths: &'a BTreeMap<String, V>, path: &str) -> Option<&'a str> {
    let directory_of_path =
        path.match_indices('/').find_map(|(end, _)| paths.get_key_value(&path[..end])).map(|(other, _)| other);
    let as_directory = format!("{path}/");
    // Every path inside `path` starts with `path/`, so they sort together, from `path/` on.
    let inside_path = || {
        let mut after = paths.range::<str, _>((Bound::Included(as_directory.as_str()), Bound::Unbounded));
        after.next().map(|(other, _)| other).filter(|other| other.starts_with(&as_directory))
    };
    directory_of_path.or_else(inside_path).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_path_conflicts_with_its_directories_and_the_paths_inside_it() {
        let paths: BTreeMap<String, ()> = ["bin", "bin-tools/x", "config/a.yaml", "config.d/x"]
            .into_iter()
            .map(|path| (path.to_string(), ()))
            .collect();
        assert_eq!(nesting_conflict(&paths, "bin/stella"), Some("bin"));
        assert_eq!(nesting_conflict(&paths, "config"), Some("config/a.yaml"));
        assert_eq!(nesting_conflict(&paths, "config/a.yaml/x"), Some("config/a.yaml"));
        for free in ["bin-tools/y", "config/b.yaml", "conf", "config.d/y", "bi"] {
            assert_eq!(nesting_conflict(&paths, free), None, "{free}");
        }
    }
}
