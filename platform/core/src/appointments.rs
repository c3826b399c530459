//! Appointments at the in-person desk (نوبت‌دهی): the slots a municipality offers, from its desk
//! hours per weekday and its working calendar (no slot on a day off or a holiday, none outside
//! the hours).

use crate::calendar::WorkingCalendar;
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};

/// Desk hours on one weekday: opening and closing time, slot length and people per slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskHours {
    /// The weekday.
    pub weekday: Weekday,
    /// First slot starts here.
    pub opens: NaiveTime,
    /// The last slot ends by here.
    pub closes: NaiveTime,
    /// Minutes per slot.
    pub slot_minutes: u32,
    /// People the desk serves per slot.
    pub capacity: u32,
}

/// One bookable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// Day.
    pub day: NaiveDate,
    /// Start time (Iran time).
    pub starts: NaiveTime,
    /// People per slot.
    pub capacity: u32,
}

/// The slots of `days` days from `from` (inclusive), in order: working days only, within the
/// desk hours of their weekday, whole slots only.
pub fn slots(
    hours: &[DeskHours],
    calendar: &WorkingCalendar,
    from: NaiveDate,
    days: u32,
) -> Vec<Slot> {
    let mut out = Vec::new();
    for offset in 0..days {
        let day = from + Duration::days(i64::from(offset));
        if !calendar.is_working_day(day) {
            continue;
        }
        for h in hours.iter().filter(|h| h.weekday == day.weekday()) {
            if h.slot_minutes == 0 || h.capacity == 0 {
                continue;
            }
            let step = Duration::minutes(i64::from(h.slot_minutes));
            let mut starts = h.opens;
            // `overflowing_add_signed` guards slots that would run past midnight.
            loop {
                let (ends, wrapped) = starts.overflowing_add_signed(step);
                if wrapped != 0 || ends > h.closes {
                    break;
                }
                out.push(Slot {
                    day,
                    starts,
                    capacity: h.capacity,
                });
                starts = ends;
            }
        }
    }
    out.sort();
    out
}

/// The pool of places of the shared desk (services without desk hours of their own).
pub const SHARED_POOL: &str = "";

/// The hours that apply to `service` and the pool whose places they share: the service's own
/// rows when it has any (a pool named by its code), else the shared desk's rows (the shared
/// pool). `rows` pairs each row of hours with the service it belongs to, if any.
pub fn hours_of_service(
    rows: &[(Option<String>, DeskHours)],
    service: &str,
) -> (String, Vec<DeskHours>) {
    let own: Vec<DeskHours> = rows
        .iter()
        .filter(|(s, _)| s.as_deref() == Some(service))
        .map(|(_, h)| h.clone())
        .collect();
    if own.is_empty() {
        let shared = rows
            .iter()
            .filter(|(s, _)| s.is_none())
            .map(|(_, h)| h.clone())
            .collect();
        (SHARED_POOL.to_owned(), shared)
    } else {
        (service.to_owned(), own)
    }
}

/// Whether `slot` is one of the offered slots (a booking must name an offered time).
pub fn is_offered(
    hours: &[DeskHours],
    calendar: &WorkingCalendar,
    day: NaiveDate,
    starts: NaiveTime,
) -> Option<Slot> {
    slots(hours, calendar, day, 1)
        .into_iter()
        .find(|s| s.starts == starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jalali::JalaliDate;

    fn j(s: &str) -> NaiveDate {
        JalaliDate::parse(s).unwrap().to_gregorian().unwrap()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn slots_follow_the_hours_and_skip_days_off_and_holidays() {
        // Saturday to Wednesday 08:00-10:00 in 30-minute slots of 2; Thursday 08:00-09:00.
        let mut hours: Vec<DeskHours> = [
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
        ]
        .into_iter()
        .map(|weekday| DeskHours {
            weekday,
            opens: t(8, 0),
            closes: t(10, 0),
            slot_minutes: 30,
            capacity: 2,
        })
        .collect();
        hours.push(DeskHours {
            weekday: Weekday::Thu,
            opens: t(8, 0),
            closes: t(9, 0),
            slot_minutes: 25,
            capacity: 1,
        });
        // 1404/01/12-13 are holidays (a Tuesday and a Wednesday); Friday is off.
        let calendar = WorkingCalendar::new(vec![Weekday::Fri], [j("1404/01/12"), j("1404/01/13")]);
        let from = j("1404/01/09"); // a Saturday
        let all = slots(&hours, &calendar, from, 7);
        let days: Vec<NaiveDate> = all.iter().map(|s| s.day).collect();
        assert!(
            !days.contains(&j("1404/01/12")) && !days.contains(&j("1404/01/13")),
            "holidays"
        );
        assert!(!days.contains(&j("1404/01/15")), "Friday");
        // Saturday: 08:00, 08:30, 09:00, 09:30 (the 10:00 one would end after closing).
        let saturday: Vec<NaiveTime> = all
            .iter()
            .filter(|s| s.day == from)
            .map(|s| s.starts)
            .collect();
        assert_eq!(saturday, vec![t(8, 0), t(8, 30), t(9, 0), t(9, 30)]);
        // Thursday: 25-minute slots, only whole ones before 09:00.
        let thursday: Vec<NaiveTime> = all
            .iter()
            .filter(|s| s.day == j("1404/01/14"))
            .map(|s| s.starts)
            .collect();
        assert_eq!(thursday, vec![t(8, 0), t(8, 25)]);
        assert!(is_offered(&hours, &calendar, from, t(9, 30)).is_some());
        assert!(
            is_offered(&hours, &calendar, from, t(9, 45)).is_none(),
            "not a slot start"
        );
        assert!(
            is_offered(&hours, &calendar, from, t(7, 30)).is_none(),
            "before opening"
        );
        assert!(
            is_offered(&hours, &calendar, j("1404/01/12"), t(8, 0)).is_none(),
            "holiday"
        );
    }

    #[test]
    fn a_service_with_its_own_hours_uses_them_and_its_own_pool() {
        let h = |weekday, capacity| DeskHours {
            weekday,
            opens: t(8, 0),
            closes: t(9, 0),
            slot_minutes: 30,
            capacity,
        };
        let rows = vec![
            (None, h(Weekday::Sat, 3)),
            (Some("MUN-URB-001".to_owned()), h(Weekday::Sun, 1)),
            (Some("MUN-URB-001".to_owned()), h(Weekday::Mon, 1)),
        ];
        let (pool, own) = hours_of_service(&rows, "MUN-URB-001");
        assert_eq!(pool, "MUN-URB-001");
        assert_eq!(own, vec![h(Weekday::Sun, 1), h(Weekday::Mon, 1)]);
        let (pool, shared) = hours_of_service(&rows, "MUN-REV-002");
        assert_eq!(pool, SHARED_POOL);
        assert_eq!(shared, vec![h(Weekday::Sat, 3)]);
        assert_eq!(hours_of_service(&[], "X").1, vec![]);
    }

    #[test]
    fn late_hours_do_not_wrap_past_midnight() {
        let hours = [DeskHours {
            weekday: Weekday::Sat,
            opens: t(23, 0),
            closes: t(23, 59),
            slot_minutes: 45,
            capacity: 1,
        }];
        let s = slots(&hours, &WorkingCalendar::default(), j("1404/01/09"), 1);
        assert_eq!(s.len(), 1);
    }
}
