//! The part of Prometheus's alert templates (Go `text/template`) that rule files use: `{{ $labels.x }}`
//! (also `.Labels.x`), `{{ $value }}` (`.Value`), `{{ $externalLabels.x }}` (none are set: empty),
//! pipes into `humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration`, `toUpper`,
//! `toLower`, and `printf` with `%s %v %d %f %g %e` (with precision) and `%%`, the format quoted with
//! `"..."` or backticks; `{{-` and `-}}` trim spaces as Go does. Anything else is refused when the file
//! is loaded, naming what is not supported, instead of rendering wrongly at alert time.
use std::collections::BTreeMap;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action { printf: Option<String>, argument: Argument, pipes: Vec<Pipe> },
}

#[derive(Debug, Clone, PartialEq)]
enum Argument {
    Value,
    Label(String),
    ExternalLabel,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pipe {
    Humanize,
    Humanize1024,
    HumanizePercentage,
    HumanizeDuration,
    ToUpper,
    ToLower,
}

/// What a template is expanded with.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// The alert's labels (`$labels`).
    pub labels: &'a BTreeMap<String, String>,
    /// The value of its series (`$value`).
    pub value: f64,
}

/// A value while an action is expanded.
enum Current {
    Number(f64),
    Text(String),
}

impl Template {
    /// Parses `text`; the error says what part is not supported.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut before = rest[..open].to_string();
            let after_open = &rest[open + 2..];
            let close = after_open.find("}}").ok_or_else(|| format!("unclosed action in {text:?}"))?;
            let mut action = &after_open[..close];
            rest = &after_open[close + 2..];
            if let Some(trimmed) = action.strip_prefix('-') {
                action = trimmed;
                before.truncate(before.trim_end().len());
            }
            let trim_after = action.ends_with('-') && action.len() > 1;
            if trim_after {
                action = &action[..action.len() - 1];
                rest = rest.trim_start();
            }
            if !before.is_empty() {
                parts.push(Part::Text(before));
            }
            parts.push(parse_action(action.trim())?);
        }
        if rest.contains("}}") {
            return Err(format!("a closing }} without an opening {{{{ in {text:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether it has an action (a plain string otherwise).
    pub fn is_dynamic(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Action { .. }))
    }

    /// The template expanded with `data`.
    pub fn expand(&self, data: Data<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action { printf, argument, pipes } => {
                    let mut current = match argument {
                        Argument::Value => Current::Number(data.value),
                        Argument::Label(name) => Current::Text(data.labels.get(name).cloned().unwrap_or_default()),
                        Argument::ExternalLabel => Current::Text(String::new()),
                    };
                    if let Some(format) = printf {
                        current = Current::Text(printf_go(format, &current));
                    }
                    for pipe in pipes {
                        current = apply(*pipe, current);
                    }
                    out.push_str(&match current {
                        Current::Number(number) => go_shortest(number),
                        Current::Text(text) => text,
                    });
                }
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Part, String> {
    let mut stages = action.split('|').map(str::trim);
    let head = stages.next().unwrap_or_default();
    let (printf, argument) = if let Some(rest) = head.strip_prefix("printf") {
        let rest = rest.trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '`')
            .ok_or_else(|| format!("printf needs a quoted format: {{{{ {action} }}}}"))?;
        let end = rest[1..].find(quote).ok_or_else(|| format!("unclosed printf format: {{{{ {action} }}}}"))? + 1;
        let format = rest[1..end].to_string();
        (Some(format), argument(rest[end + 1..].trim(), action)?)
    } else {
        (None, argument(head, action)?)
    };
    let pipes = stages
        .map(|stage| match stage {
            "humanize" => Ok(Pipe::Humanize),
            "humanize1024" => Ok(Pipe::Humanize1024),
            "humanizePercentage" => Ok(Pipe::HumanizePercentage),
            "humanizeDuration" => Ok(Pipe::HumanizeDuration),
            "toUpper" => Ok(Pipe::ToUpper),
            "toLower" => Ok(Pipe::ToLower),
            other => Err(format!(
                "the function {other:?} is not supported (humanize, humanize1024, humanizePercentage, humanizeDuration, toUpper, toLower, printf are): {{{{ {action} }}}}"
            )),
        })
        .collect::<Result<Vec<Pipe>, String>>()?;
    Ok(Part::Action { printf, argument, pipes })
}

fn argument(text: &str, action: &str) -> Result<Argument, String> {
    if text == "$value" || text == ".Value" {
        return Ok(Argument::Value);
    }
    if let Some(name) = text.strip_prefix("$labels.").or_else(|| text.strip_prefix(".Labels."))
        && crate::prometheus::valid_label_name(name)
    {
        return Ok(Argument::Label(name.to_string()));
    }
    if text.strip_prefix("$externalLabels.").or_else(|| text.strip_prefix(".ExternalLabels.")).is_some() {
        return Ok(Argument::ExternalLabel);
    }
    Err(format!(
        "{text:?} is not supported in a template ($labels.<name>, $value, $externalLabels.<name> are): {{{{ {action} }}}}"
    ))
}

fn apply(pipe: Pipe, current: Current) -> Current {
    let number = match &current {
        Current::Number(number) => Some(*number),
        Current::Text(text) => text.trim().parse::<f64>().ok(),
    };
    match pipe {
        Pipe::ToUpper => Current::Text(text_of(current).to_uppercase()),
        Pipe::ToLower => Current::Text(text_of(current).to_lowercase()),
        _ => {
            let Some(value) = number else { return current };
            Current::Text(match pipe {
                Pipe::Humanize => humanize(value, 1000.0),
                Pipe::Humanize1024 => humanize(value, 1024.0),
                Pipe::HumanizePercentage => format!("{}%", go_g(value * 100.0, 4)),
                _ => humanize_duration(value),
            })
        }
    }
}

fn text_of(current: Current) -> String {
    match current {
        Current::Number(number) => go_shortest(number),
        Current::Text(text) => text,
    }
}

/// Prometheus's `humanize` (base 1000) and `humanize1024`.
fn humanize(mut value: f64, base: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return go_g(value, 4);
    }
    if value.abs() >= 1.0 {
        let prefixes: &[&str] = if base == 1024.0 {
            &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]
        } else {
            &["k", "M", "G", "T", "P", "E", "Z", "Y"]
        };
        let mut prefix = "";
        for candidate in prefixes {
            if value.abs() < base {
                break;
            }
            prefix = candidate;
            value /= base;
        }
        return format!("{}{prefix}", go_g(value, 4));
    }
    if base == 1024.0 {
        return go_g(value, 4);
    }
    let mut prefix = "";
    for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = candidate;
        value *= 1000.0;
    }
    format!("{}{prefix}", go_g(value, 4))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, `1.5s` or `250ms`.
fn humanize_duration(mut value: f64) -> String {
    if !value.is_finite() {
        return go_g(value, 4);
    }
    if value == 0.0 {
        return format!("{}s", go_g(value, 4));
    }
    if value.abs() >= 1.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        value = value.abs();
        let whole = value as i64;
        let (seconds, minutes, hours, days) = (whole % 60, (whole / 60) % 60, (whole / 3600) % 24, whole / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", go_g(value, 4))
        };
    }
    let mut prefix = "";
    for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = candidate;
        value *= 1000.0;
    }
    format!("{}{prefix}s", go_g(value, 4))
}

/// Go's `%.<precision>g`.
fn go_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value == 0.0 {
        return "0".into();
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        format!("{}e{}{:02}", trim_zeros(mantissa), if exponent < 0 { '-' } else { '+' }, exponent.abs())
    } else {
        let decimals = usize::try_from(precision as i32 - 1 - exponent).unwrap_or(0);
        trim_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

/// Go's `%v` of a float: the shortest representation, in exponent form below 1e-4 or from 1e6 on.
fn go_shortest(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return go_g(value, 1);
    }
    let exponent = value.abs().log10().floor() as i32;
    if (-4..6).contains(&exponent) {
        format!("{value}")
    } else {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text }
}

/// Go's `printf` for one argument.
fn printf_go(format: &str, argument: &Current) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision = String::new();
        if chars.peek() == Some(&'.') {
            chars.next();
            while let Some(digit) = chars.peek().filter(|d| d.is_ascii_digit()) {
                precision.push(*digit);
                chars.next();
            }
        }
        let precision: Option<usize> = precision.parse().ok();
        let number = match argument {
            Current::Number(number) => Some(*number),
            Current::Text(text) => text.parse::<f64>().ok(),
        };
        match (chars.next(), number) {
            (Some('%'), _) => out.push('%'),
            (Some('s' | 'v'), _) => out.push_str(&match argument {
                Current::Number(number) => go_shortest(*number),
                Current::Text(text) => text.clone(),
            }),
            (Some('d'), Some(number)) => out.push_str(&format!("{}", number.trunc() as i64)),
            (Some('f'), Some(number)) => out.push_str(&if number.is_finite() {
                format!("{number:.*}", precision.unwrap_or(6))
            } else {
                go_g(number, 1)
            }),
            (Some('g'), Some(number)) => {
                out.push_str(&precision.map_or_else(|| go_shortest(number), |p| go_g(number, p)))
            }
            (Some('e'), Some(number)) => {
                let scientific = format!("{number:.*e}", precision.unwrap_or(6));
                let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
                let exponent: i32 = exponent.parse().unwrap_or(0);
                out.push_str(&format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs()));
            }
            (Some(verb), _) => out.push_str(&format!("%!{verb}(BADVALUE)")),
            (None, _) => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, value: f64) -> String {
        let labels = BTreeMap::from([("job".to_string(), "api".to_string())]);
        Template::parse(text).unwrap().expand(Data { labels: &labels, value })
    }

    #[test]
    fn labels_values_and_prometheus_functions_render_as_prometheus_renders_them() {
        assert_eq!(render("{{ $labels.job }} on {{ $labels.instance }}", 0.0), "api on ");
        assert_eq!(render("{{ .Labels.job }}: {{ $value }}", 1234567.0), "api: 1.234567e+06");
        assert_eq!(render("{{ $value }}", 0.5), "0.5");
        assert_eq!(render("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(render("{{ $value | humanize }}", 0.0012), "1.2m");
        assert_eq!(render("{{ $value | humanize1024 }}", 2048.0), "2ki");
        assert_eq!(render("{{ $value | humanizePercentage }}", 0.12345), "12.35%");
        assert_eq!(render("{{ $value | humanizeDuration }}", 93784.0), "1d 2h 3m 4s");
        assert_eq!(render("{{ $value | humanizeDuration }}", 1.5), "1.5s");
        assert_eq!(render("{{ $value | humanizeDuration }}", 0.25), "250ms");
        assert_eq!(render("{{ printf `%.2f` $value }} /s", 1.23456), "1.23 /s");
        assert_eq!(render("{{ printf \"%.0f%%\" $value }}", 99.6), "100%");
        assert_eq!(render("{{ $labels.job | toUpper }}", 0.0), "API");
        assert_eq!(render("a {{- $labels.job -}} b", 0.0), "aapib");
        assert_eq!(render("{{ $externalLabels.cluster }}", 0.0), "");
    }

    #[test]
    fn what_is_not_supported_is_refused_with_its_name() {
        for (text, expected) in [
            ("{{ range $labels }}x{{ end }}", "not supported in a template"),
            ("{{ $value | title }}", "the function \"title\" is not supported"),
            ("{{ $labels.job", "unclosed action"),
            ("{{ printf %d $value }}", "printf needs a quoted format"),
        ] {
            let error = Template::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
