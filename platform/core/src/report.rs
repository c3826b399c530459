//! Reporting periods in the Jalali calendar (months, the six-monthly periods the guideline
//! reports on, years) and small statistics shared by the reports.

use crate::jalali::JalaliDate;
use chrono::NaiveDate;

/// Persian names of the Jalali months.
pub const MONTHS_FA: [&str; 12] = [
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
];

/// A reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// One month: year and month (1-12).
    Month(i32, u32),
    /// First (Farvardin-Shahrivar) or second (Mehr-Esfand) half of a year: year and 1 or 2.
    Half(i32, u32),
    /// A whole year.
    Year(i32),
}

impl Period {
    /// Parses `1405-09` (a month), `1405-h1` / `1405-h2` (a half) or `1405` (a year), in
    /// ASCII or Persian digits.
    pub fn parse(raw: &str) -> Option<Self> {
        let text = crate::mobile::ascii_digits(raw.trim()).to_ascii_lowercase();
        let (year, rest) = match text.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (text.as_str(), None),
        };
        let year: i32 = year.parse().ok().filter(|y| (1300..=1500).contains(y))?;
        match rest {
            None => Some(Self::Year(year)),
            Some("h1") => Some(Self::Half(year, 1)),
            Some("h2") => Some(Self::Half(year, 2)),
            Some(m) => {
                let m: u32 = m.parse().ok().filter(|m| (1..=12).contains(m))?;
                Some(Self::Month(year, m))
            }
        }
    }

    /// The half year `day` falls in.
    pub fn half_of(day: NaiveDate) -> Self {
        let (y, m, _) = JalaliDate::from_gregorian(day).ymd();
        Self::Half(y, if m <= 6 { 1 } else { 2 })
    }

    /// The month `day` falls in.
    pub fn month_of(day: NaiveDate) -> Self {
        let (y, m, _) = JalaliDate::from_gregorian(day).ymd();
        Self::Month(y, m)
    }

    /// The key `parse` reads back.
    pub fn key(self) -> String {
        match self {
            Self::Month(y, m) => format!("{y}-{m:02}"),
            Self::Half(y, h) => format!("{y}-h{h}"),
            Self::Year(y) => format!("{y}"),
        }
    }

    /// The period's name in Persian (`آذر ۱۴۰۵`, `نیمه دوم ۱۴۰۵`, `سال ۱۴۰۵`).
    pub fn label_fa(self) -> String {
        let text = match self {
            Self::Month(y, m) => format!("{} {y}", MONTHS_FA[(m as usize).clamp(1, 12) - 1]),
            Self::Half(y, 1) => format!("نیمه نخست {y}"),
            Self::Half(y, _) => format!("نیمه دوم {y}"),
            Self::Year(y) => format!("سال {y}"),
        };
        crate::text::persian_digits(&text)
    }

    /// First and last month as `year * 100 + month`.
    pub fn month_range(self) -> (i32, i32) {
        match self {
            Self::Month(y, m) => (y * 100 + m as i32, y * 100 + m as i32),
            Self::Half(y, 1) => (y * 100 + 1, y * 100 + 6),
            Self::Half(y, _) => (y * 100 + 7, y * 100 + 12),
            Self::Year(y) => (y * 100 + 1, y * 100 + 12),
        }
    }

    /// First and last Gregorian day of the period.
    pub fn days(self) -> Option<(NaiveDate, NaiveDate)> {
        let (first, last) = self.month_range();
        let start = JalaliDate::first_of_month(first / 100, (first % 100) as u32)?;
        let (ny, nm) = if last % 100 == 12 {
            (last / 100 + 1, 1)
        } else {
            (last / 100, (last % 100) as u32 + 1)
        };
        let end = JalaliDate::first_of_month(ny, nm)?.pred_opt()?;
        Some((start, end))
    }

    /// The period before this one, of the same kind.
    pub fn previous(self) -> Self {
        match self {
            Self::Month(y, 1) => Self::Month(y - 1, 12),
            Self::Month(y, m) => Self::Month(y, m - 1),
            Self::Half(y, 1) => Self::Half(y - 1, 2),
            Self::Half(y, _) => Self::Half(y, 1),
            Self::Year(y) => Self::Year(y - 1),
        }
    }
}

/// `year * 100 + month` of the Jalali month `day` falls in (the indicators' month key).
pub fn month_key(day: NaiveDate) -> i32 {
    let (y, m, _) = JalaliDate::from_gregorian(day).ymd();
    y * 100 + m as i32
}

/// The median of some values (the mean of the middle two for an even count); `None` if empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// `part / whole` as a percentage, `None` when `whole` is zero.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_parse_and_round_trip() {
        for raw in ["1405-09", "1405-h1", "1405-h2", "1405"] {
            assert_eq!(Period::parse(raw).unwrap().key(), raw);
        }
        assert_eq!(Period::parse("۱۴۰۵-۰۹"), Some(Period::Month(1405, 9)));
        for bad in ["", "1405-13", "1405-00", "1405-h3", "99", "abc", "1405-"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_cover_the_jalali_calendar() {
        // Azar 1405 = 2026-11-22 .. 2026-12-21.
        assert_eq!(
            Period::Month(1405, 9).days(),
            Some((d(2026, 11, 22), d(2026, 12, 21)))
        );
        // 1403 is a leap year: Esfand has 30 days (Nowruz 1404 = 2025-03-21).
        assert_eq!(
            Period::Half(1403, 2).days(),
            Some((d(2024, 9, 22), d(2025, 3, 20)))
        );
        assert_eq!(
            Period::Year(1404).days(),
            Some((d(2025, 3, 21), d(2026, 3, 20)))
        );
        assert_eq!(Period::half_of(d(2026, 12, 2)), Period::Half(1405, 2));
        assert_eq!(Period::month_of(d(2026, 12, 2)), Period::Month(1405, 9));
        assert_eq!(month_key(d(2026, 12, 2)), 140_509);
        assert_eq!(Period::Half(1405, 2).month_range(), (140_507, 140_512));
        assert_eq!(Period::Month(1405, 1).previous(), Period::Month(1404, 12));
        assert_eq!(Period::Half(1405, 1).previous(), Period::Half(1404, 2));
        assert_eq!(Period::Half(1405, 2).label_fa(), "نیمه دوم ۱۴۰۵");
        assert_eq!(Period::Month(1405, 9).label_fa(), "آذر ۱۴۰۵");
    }

    #[test]
    fn median_and_percent() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(1, 0), None);
    }
}
