//! Reading metrics in tests: one sample of a Prometheus text exposition, and polling for a
//! value with a deadline.

use std::{future::Future, time::Duration};

/// The value of the sample `name` with exactly `labels` (in any order), if the exposition
/// `text` has it.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want = labels.to_vec();
    want.sort_unstable();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let mut found: Vec<(&str, &str)> = rest
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            found.sort_unstable();
            (found == want).then(|| value.parse().ok()).flatten()
        })
}

/// Scrapes with `scrape` until the sample `name{labels}` satisfies `ok` (a missing sample
/// counts as 0), within 10 s; panics with the last value otherwise. Returns the value.
#[track_caller]
pub fn until<F, Fut>(
    mut scrape: F,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> impl Future<Output = f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = String>,
{
    let caller = std::panic::Location::caller();
    let (name, labels) = (name.to_owned(), labels.to_vec());
    async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = scrape().await;
            let value = sample(&text, &name, &labels).unwrap_or(0.0);
            if ok(value) {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{caller}: {name}{labels:?} is {value}, never as expected\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_sample_by_name_and_labels() {
        let text = "# HELP x_total x\n# TYPE x_total counter\n\
                    x_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"1\"} 4\ny 0.5\n";
        assert_eq!(
            sample(text, "x_total", &[("b", "2"), ("a", "1")]),
            Some(3.0)
        );
        assert_eq!(sample(text, "x_total", &[("a", "1")]), Some(4.0));
        assert_eq!(sample(text, "x_total", &[]), None);
        assert_eq!(sample(text, "y", &[]), Some(0.5));
        assert_eq!(sample(text, "z", &[]), None);
    }
}
