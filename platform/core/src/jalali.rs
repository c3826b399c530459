//! Jalali (Solar Hijri) dates, as Iranians read and write them.
//!
//! Conversion uses the arithmetic of the well-known `jdf` routines (33-year cycles), exact for
//! the years the desk deals with (checked against the published calendar in the tests).

use crate::error::FieldErrors;
use crate::mobile::ascii_digits;
use chrono::{Datelike, NaiveDate};
use std::fmt;

/// A day of the Jalali calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JalaliDate {
    year: i32,
    month: u32,
    day: u32,
}

impl JalaliDate {
    /// The Jalali date of a Gregorian day.
    pub fn from_gregorian(date: NaiveDate) -> Self {
        let (gy, gm, gd) = (date.year(), date.month() as i32, date.day() as i32);
        const G_D_M: [i32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let gy2 = if gm > 2 { gy + 1 } else { gy };
        let mut days = 355_666 + 365 * gy + (gy2 + 3) / 4 - (gy2 + 99) / 100
            + (gy2 + 399) / 400
            + gd
            + G_D_M[(gm - 1) as usize];
        let mut jy = -1595 + 33 * (days / 12_053);
        days %= 12_053;
        jy += 4 * (days / 1461);
        days %= 1461;
        if days > 365 {
            jy += (days - 1) / 365;
            days = (days - 1) % 365;
        }
        let (jm, jd) = if days < 186 {
            (1 + days / 31, 1 + days % 31)
        } else {
            (7 + (days - 186) / 30, 1 + (days - 186) % 30)
        };
        Self {
            year: jy,
            month: jm as u32,
            day: jd as u32,
        }
    }

    /// The Gregorian day of this Jalali date.
    pub fn to_gregorian(self) -> Option<NaiveDate> {
        let jy = self.year + 1595;
        let (jm, jd) = (self.month as i32, self.day as i32);
        let mut days = -355_668
            + 365 * jy
            + (jy / 33) * 8
            + ((jy % 33) + 3) / 4
            + jd
            + if jm < 7 {
                (jm - 1) * 31
            } else {
                (jm - 7) * 30 + 186
            };
        let mut gy = 400 * (days / 146_097);
        days %= 146_097;
        if days > 36_524 {
            days -= 1;
            gy += 100 * (days / 36_524);
            days %= 36_524;
            if days >= 365 {
                days += 1;
            }
        }
        gy += 4 * (days / 1461);
        days %= 1461;
        if days > 365 {
            gy += (days - 1) / 365;
            days = (days - 1) % 365;
        }
        let mut gd = days + 1;
        let leap = (gy % 4 == 0 && gy % 100 != 0) || gy % 400 == 0;
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut gm = 1;
        for len in month_days {
            if gd <= len {
                break;
            }
            gd -= len;
            gm += 1;
        }
        NaiveDate::from_ymd_opt(gy, gm, u32::try_from(gd).ok()?)
    }

    /// Parses `1404/01/15` (also with `-`, and Persian or Arabic digits).
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let invalid = || {
            FieldErrors::single(
                "date",
                "jalali_date",
                "تاریخ را به شکل ۱۴۰۴/۰۱/۱۵ وارد کنید.",
            )
        };
        let text = ascii_digits(raw.trim());
        let parts: Vec<&str> = text.split(['/', '-']).collect();
        let [y, m, d] = parts[..] else {
            return Err(invalid());
        };
        let (Ok(year), Ok(month), Ok(day)) = (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>())
        else {
            return Err(invalid());
        };
        let max_day = if month <= 6 { 31 } else { 30 };
        if !(1300..=1500).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > max_day
        {
            return Err(invalid());
        }
        let date = Self { year, month, day };
        // Esfand 30 exists only in leap years: it must survive the round trip.
        match date.to_gregorian().map(Self::from_gregorian) {
            Some(back) if back == date => Ok(date),
            _ => Err(invalid()),
        }
    }

    /// A Gregorian day as Iranians read it: `۱۴۰۴/۰۱/۱۵`.
    pub fn persian_of(date: NaiveDate) -> String {
        crate::text::persian_digits(&Self::from_gregorian(date).to_string())
    }

    /// The Gregorian day of the first of a Jalali month.
    pub fn first_of_month(year: i32, month: u32) -> Option<NaiveDate> {
        if !(1..=12).contains(&month) {
            return None;
        }
        Self {
            year,
            month,
            day: 1,
        }
        .to_gregorian()
    }

    /// Year, month (1 = Farvardin) and day.
    pub fn ymd(self) -> (i32, u32, u32) {
        (self.year, self.month, self.day)
    }
}

impl fmt::Display for JalaliDate {
    /// `1404/01/05` in ASCII digits (pass through `persian_digits` for display).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn known_days() {
        for (greg, jalali) in [
            (g(2026, 3, 21), "1405/01/01"),
            (g(2026, 3, 20), "1404/12/29"),
            (g(2025, 3, 21), "1404/01/01"),
            (g(2025, 3, 20), "1403/12/30"),
            (g(2024, 3, 20), "1403/01/01"),
            (g(2026, 11, 25), "1405/09/04"),
            (g(1979, 2, 11), "1357/11/22"),
        ] {
            let j = JalaliDate::from_gregorian(greg);
            assert_eq!(j.to_string(), jalali, "{greg}");
            assert_eq!(j.to_gregorian(), Some(greg));
            assert_eq!(JalaliDate::parse(jalali).unwrap(), j);
        }
    }

    #[test]
    fn every_day_round_trips() {
        let mut day = g(1990, 1, 1);
        while day < g(2060, 1, 1) {
            let j = JalaliDate::from_gregorian(day);
            assert_eq!(j.to_gregorian(), Some(day));
            day = day.succ_opt().unwrap();
        }
    }

    #[test]
    fn parsing_is_strict() {
        assert_eq!(
            JalaliDate::parse("۱۴۰۴/۰۱/۱۵").unwrap().to_string(),
            "1404/01/15"
        );
        assert!(
            JalaliDate::parse("1403/12/30").is_ok(),
            "1403 is a leap year"
        );
        for bad in [
            "1404/12/30",
            "1404/07/31",
            "1404/13/01",
            "1404/00/10",
            "14040115",
            "",
            "abc/01/01",
        ] {
            assert!(JalaliDate::parse(bad).is_err(), "{bad}");
        }
    }
}
