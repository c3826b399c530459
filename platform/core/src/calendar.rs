//! The clock and calendar of Miz: what day and time it is in Iran (from the time-zone
//! database, since Iran's offset rules have changed before: daylight saving ended in 2022), and
//! the working calendar of a municipality: which days count towards a promised answer date.
//!
//! Weekly days off are configurable (Friday everywhere; many municipalities also close on
//! Thursday), and official holidays are passed in as Gregorian dates by the caller.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use std::collections::BTreeSet;

/// Iran's time zone (every municipality is in it).
pub const IRAN: chrono_tz::Tz = chrono_tz::Asia::Tehran;

/// The wall-clock date and time in Iran at instant `at`.
pub fn iran_time(at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&IRAN).naive_local()
}

/// Today's date in Iran.
pub fn today_in_iran() -> NaiveDate {
    iran_time(Utc::now()).date()
}

/// The instant day `d` begins in Iran (midnight there).
pub fn start_of_iran_day(d: NaiveDate) -> DateTime<Utc> {
    let midnight = d.and_time(chrono::NaiveTime::MIN);
    IRAN.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// Whether an answer promised for `promised_on` is late on `today` (both Iranian dates).
pub fn is_overdue(promised_on: NaiveDate, today: NaiveDate) -> bool {
    promised_on < today
}

/// How far [`WorkingCalendar::promised_date`] looks ahead before giving up (about ten years).
const SEARCH_LIMIT_DAYS: u32 = 3660;

/// Weekly days off and holidays of one municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCalendar {
    weekly_off: Vec<Weekday>,
    holidays: BTreeSet<NaiveDate>,
}

impl WorkingCalendar {
    /// A calendar with the given weekly days off and holidays.
    pub fn new(weekly_off: Vec<Weekday>, holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self {
            weekly_off,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Whether offices are open on `d`.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !self.weekly_off.contains(&d.weekday()) && !self.holidays.contains(&d)
    }

    /// The day by which an answer is promised for a request submitted on `submitted_on`.
    ///
    /// That is the `working_days`-th working day strictly after `submitted_on`. With zero days,
    /// the answer is due the same day if it is a working day, else on the next working day. If
    /// the calendar has no working day in sight (every weekday off), the search stops after
    /// about ten years and returns the last day reached.
    pub fn promised_date(&self, submitted_on: NaiveDate, working_days: u32) -> NaiveDate {
        if working_days == 0 && self.is_working_day(submitted_on) {
            return submitted_on;
        }
        let wanted = working_days.max(1);
        let mut day = submitted_on;
        let mut counted = 0;
        for _ in 0..SEARCH_LIMIT_DAYS {
            let Some(next) = day.succ_opt() else {
                break;
            };
            day = next;
            if self.is_working_day(day) {
                counted += 1;
                if counted == wanted {
                    break;
                }
            }
        }
        day
    }

    /// Working days strictly after `from` up to and including `to` (0 when `to <= from`): how
    /// long a request filed on `from` and answered on `to` took, in the unit cards declare.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .take(SEARCH_LIMIT_DAYS as usize)
            .filter(|d| self.is_working_day(*d))
            .fold(0, |n, _| n + 1)
    }
}

impl Default for WorkingCalendar {
    /// Friday off, no holidays.
    fn default() -> Self {
        Self::new(vec![Weekday::Fri], [])
    }
}

/// The weekday of an ISO number (1 = Monday ... 7 = Sunday), as the `work_week` setting
/// stores days off.
pub fn weekday_from_iso(n: u32) -> Option<Weekday> {
    Weekday::try_from(u8::try_from(n.checked_sub(1)?).ok()?).ok()
}

#[cfg(test)]
mod clock_tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn iran_time_follows_the_time_zone_database() {
        // Since 2022 no daylight saving: +03:30 all year.
        let winter = Utc.with_ymd_and_hms(2026, 12, 7, 21, 0, 0).unwrap();
        assert_eq!(iran_time(winter).to_string(), "2026-12-08 00:30:00");
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 20, 0, 0).unwrap();
        assert_eq!(iran_time(summer).to_string(), "2026-07-01 23:30:00");
        // In 2021 summer clocks were at +04:30.
        let old_summer = Utc.with_ymd_and_hms(2021, 7, 1, 20, 0, 0).unwrap();
        assert_eq!(iran_time(old_summer).to_string(), "2021-07-02 00:30:00");
        let d = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
        assert_eq!(start_of_iran_day(d).to_string(), "2026-12-07 20:30:00 UTC");
        assert!(is_overdue(d, d.succ_opt().unwrap()) && !is_overdue(d, d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jalali::JalaliDate;

    fn j(raw: &str) -> NaiveDate {
        JalaliDate::parse(raw).unwrap().to_gregorian().unwrap()
    }

    fn jalali(d: NaiveDate) -> String {
        JalaliDate::from_gregorian(d).to_string()
    }

    /// Esfand 1403 and Farvardin 1404 holidays: oil nationalization day, Nowruz, Islamic
    /// Republic day and Sizdah Bedar.
    fn nowruz_1404(weekly_off: Vec<Weekday>) -> WorkingCalendar {
        let holidays = [
            "1403/12/29",
            "1404/01/01",
            "1404/01/02",
            "1404/01/03",
            "1404/01/04",
            "1404/01/12",
            "1404/01/13",
        ]
        .map(j);
        WorkingCalendar::new(weekly_off, holidays)
    }

    #[test]
    fn the_calendar_is_where_we_think_it_is() {
        assert_eq!(
            j("1403/12/29"),
            NaiveDate::from_ymd_opt(2025, 3, 19).unwrap()
        );
        assert_eq!(
            j("1403/12/30"),
            NaiveDate::from_ymd_opt(2025, 3, 20).unwrap()
        );
        assert_eq!(
            j("1404/01/01"),
            NaiveDate::from_ymd_opt(2025, 3, 21).unwrap()
        );
        assert_eq!(j("1404/01/01").weekday(), Weekday::Fri);
        assert_eq!(j("1403/12/27").weekday(), Weekday::Mon);
    }

    #[test]
    fn nowruz_across_a_leap_esfand_with_friday_off() {
        let cal = nowruz_1404(vec![Weekday::Fri]);
        // Submitted Monday 1403/12/27. Counting working days strictly after it:
        //   12/28 Tue  -> 1
        //   12/29 Wed  holiday (oil nationalization)
        //   12/30 Thu  -> 2 (exists because 1403 is leap; Thursday is open here)
        //   01/01 Fri .. 01/04 Mon  Nowruz holidays (01/01 is also a Friday)
        //   01/05 Tue  -> 3
        //   01/06 Wed  -> 4
        //   01/07 Thu  -> 5
        assert_eq!(jalali(cal.promised_date(j("1403/12/27"), 5)), "1404/01/07");
        // Ten days also crosses Sizdah Bedar:
        //   01/08 Fri off, 01/09 Sat -> 6, 01/10 Sun -> 7, 01/11 Mon -> 8,
        //   01/12 Tue and 01/13 Wed holidays, 01/14 Thu -> 9, 01/15 Fri off, 01/16 Sat -> 10
        assert_eq!(jalali(cal.promised_date(j("1403/12/27"), 10)), "1404/01/16");
    }

    #[test]
    fn nowruz_with_thursday_and_friday_off() {
        let cal = nowruz_1404(vec![Weekday::Thu, Weekday::Fri]);
        //   12/28 Tue -> 1, 12/29 Wed holiday, 12/30 Thu off, 01/01..01/04 holidays,
        //   01/05 Tue -> 2, 01/06 Wed -> 3, 01/07 Thu and 01/08 Fri off,
        //   01/09 Sat -> 4, 01/10 Sun -> 5
        assert_eq!(jalali(cal.promised_date(j("1403/12/27"), 5)), "1404/01/10");
    }

    #[test]
    fn zero_days_on_a_holiday_moves_to_the_next_working_day() {
        let cal = nowruz_1404(vec![Weekday::Fri]);
        assert_eq!(jalali(cal.promised_date(j("1404/01/01"), 0)), "1404/01/05");
        assert_eq!(jalali(cal.promised_date(j("1403/12/29"), 0)), "1403/12/30");
        // On a working day, zero days means today.
        assert_eq!(jalali(cal.promised_date(j("1403/12/28"), 0)), "1403/12/28");
        // Submitted on a holiday with one day: the first working day after it.
        assert_eq!(jalali(cal.promised_date(j("1404/01/01"), 1)), "1404/01/05");
    }

    #[test]
    fn default_is_friday_off() {
        let cal = WorkingCalendar::default();
        assert!(!cal.is_working_day(j("1404/01/08")));
        assert!(cal.is_working_day(j("1404/01/07")));
        assert!(cal.is_working_day(j("1404/01/01") + chrono::Days::new(1)));
    }

    #[test]
    fn a_calendar_without_working_days_terminates() {
        let all = vec![
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ];
        let cal = WorkingCalendar::new(all, []);
        let start = j("1404/01/01");
        let end = cal.promised_date(start, 3);
        assert_eq!(end, start + chrono::Days::new(u64::from(SEARCH_LIMIT_DAYS)));
        assert_eq!(cal.promised_date(start, 0), end);
    }

    #[test]
    fn iso_weekdays() {
        assert_eq!(weekday_from_iso(1), Some(Weekday::Mon));
        assert_eq!(weekday_from_iso(5), Some(Weekday::Fri));
        assert_eq!(weekday_from_iso(7), Some(Weekday::Sun));
        assert_eq!(weekday_from_iso(0), None);
        assert_eq!(weekday_from_iso(8), None);
    }

    #[test]
    fn working_days_between_counts_what_promised_date_adds() {
        let cal = WorkingCalendar::new(
            vec![Weekday::Fri],
            [NaiveDate::from_ymd_opt(2026, 3, 21).unwrap()],
        );
        let start = NaiveDate::from_ymd_opt(2026, 3, 15).unwrap();
        for n in 1..40 {
            assert_eq!(
                cal.working_days_between(start, cal.promised_date(start, n)),
                n
            );
        }
        assert_eq!(cal.working_days_between(start, start), 0);
        assert_eq!(
            cal.working_days_between(start, start.pred_opt().unwrap()),
            0
        );
    }
}
