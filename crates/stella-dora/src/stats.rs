//! The statistics reports use, with their definitions fixed.

/// The arithmetic mean; `None` without samples.
pub fn mean(samples: &[f64]) -> Option<f64> {
    (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
}

/// The median: the middle sample of an odd count, the mean of the two middle samples of an even
/// count; `None` without samples. `samples` need not be sorted.
pub fn median(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The 90th percentile by nearest rank: the smallest sample with at least 90% of the samples at or
/// below it (the `ceil(0.9 n)`-th smallest); `None` without samples.
pub fn p90(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples);
    let rank = (sorted.len() * 9).div_ceil(10);
    rank.checked_sub(1).and_then(|index| sorted.get(index).copied())
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_zero_one_two_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[1.0, 4.0]), Some(2.5));
        assert_eq!(median(&[9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(&[8.0, 1.0, 4.0, 2.0]), Some(3.0));
    }

    #[test]
    fn p90_is_the_nearest_rank_and_mean_is_plain() {
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[7.0]), Some(7.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&ten), Some(9.0));
        let eleven: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(p90(&eleven), Some(10.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    }
}
