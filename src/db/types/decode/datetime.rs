//! `date`, `time`, `timetz`, `timestamp`, `timestamptz` and `interval`.
//!
//! The binary forms count from 2000-01-01 (days for `date`, microseconds
//! for timestamps); calendar conversion is the proleptic Gregorian
//! algorithm PostgreSQL uses, with year 0 printed as "0001 ... BC".

use super::fmt::{push_i64, push_padded};
use super::reader::{Bad, Reader};

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// Days from 1970-01-01 to 2000-01-01.
const UNIX_TO_PG_DAYS: i64 = 10_957;

fn exact<const N: usize>(buf: &[u8]) -> Result<[u8; N], Bad> {
    buf.try_into().map_err(|_| Bad("wrong length"))
}

/// `date` → `"YYYY-MM-DD"`, `"0044-03-15 BC"`, `"infinity"`, `"-infinity"`.
pub(super) fn date(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let days = i32::from_be_bytes(exact(buf)?);
    out.push(b'"');
    match days {
        i32::MAX => out.extend_from_slice(b"infinity"),
        i32::MIN => out.extend_from_slice(b"-infinity"),
        _ => {
            let bc = push_date(out, days.into());
            push_bc(out, bc);
        }
    }
    out.push(b'"');
    Ok(())
}

/// `time` → `"HH:MM:SS[.ffffff]"`.
pub(super) fn time(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let usecs = i64::from_be_bytes(exact(buf)?);
    out.push(b'"');
    push_time(out, usecs)?;
    out.push(b'"');
    Ok(())
}

/// `timetz` → `"HH:MM:SS[.ffffff]+HH:MM"`. The binary zone is seconds
/// *west* of UTC, so it is negated.
pub(super) fn timetz(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (usecs, west) = (r.i64()?, r.i32()?);
    r.finish()?;
    out.push(b'"');
    push_time(out, usecs)?;
    push_offset(out, -i64::from(west));
    out.push(b'"');
    Ok(())
}

/// `timestamp` → `"YYYY-MM-DDTHH:MM:SS[.ffffff]"`; `timestamptz` (UTC)
/// adds `Z`. BC years get a trailing `" BC"`.
pub(super) fn timestamp(out: &mut Vec<u8>, buf: &[u8], utc: bool) -> Result<(), Bad> {
    let usecs = i64::from_be_bytes(exact(buf)?);
    out.push(b'"');
    match usecs {
        i64::MAX => out.extend_from_slice(b"infinity"),
        i64::MIN => out.extend_from_slice(b"-infinity"),
        _ => {
            let bc = push_date(out, usecs.div_euclid(USECS_PER_DAY));
            out.push(b'T');
            push_time(out, usecs.rem_euclid(USECS_PER_DAY))?;
            if utc {
                out.push(b'Z');
            }
            push_bc(out, bc);
        }
    }
    out.push(b'"');
    Ok(())
}

/// `interval` → ISO 8601 duration exactly as PostgreSQL prints it with
/// `intervalstyle = iso_8601` (`P1Y2M3DT4H5M6.5S`, `PT0S`, `P-1D`, ...).
pub(super) fn interval(out: &mut Vec<u8>, buf: &[u8]) -> Result<(), Bad> {
    let mut r = Reader::new(buf);
    let (time, days, months) = (r.i64()?, r.i32()?, r.i32()?);
    r.finish()?;
    // C-style truncating division, as PostgreSQL's interval2itm.
    let (year, mon) = (i64::from(months / 12), i64::from(months % 12));
    let hour = time / USECS_PER_HOUR;
    let min = time % USECS_PER_HOUR / USECS_PER_MINUTE;
    let sec = time % USECS_PER_MINUTE / USECS_PER_SEC;
    let usec = time % USECS_PER_SEC;
    out.push(b'"');
    if year == 0 && mon == 0 && days == 0 && time == 0 {
        out.extend_from_slice(b"PT0S\"");
        return Ok(());
    }
    out.push(b'P');
    push_part(out, year, b'Y');
    push_part(out, mon, b'M');
    push_part(out, days.into(), b'D');
    if time != 0 {
        out.push(b'T');
    }
    push_part(out, hour, b'H');
    push_part(out, min, b'M');
    if sec != 0 || usec != 0 {
        if sec < 0 || usec < 0 {
            out.push(b'-');
        }
        push_i64(out, sec.abs());
        push_fraction(out, usec.unsigned_abs());
        out.push(b'S');
    }
    out.push(b'"');
    Ok(())
}

fn push_part(out: &mut Vec<u8>, value: i64, unit: u8) {
    if value != 0 {
        push_i64(out, value);
        out.push(unit);
    }
}

/// Appends the calendar date of `days` since 2000-01-01; returns whether
/// the year is BC.
fn push_date(out: &mut Vec<u8>, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days + UNIX_TO_PG_DAYS);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    push_padded(out, shown.unsigned_abs(), 4);
    out.push(b'-');
    push_padded(out, month.into(), 2);
    out.push(b'-');
    push_padded(out, day.into(), 2);
    bc
}

fn push_bc(out: &mut Vec<u8>, bc: bool) {
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// (year, month, day) of `z` days since 1970-01-01, proleptic Gregorian,
/// astronomical years (year 0 = 1 BC). Valid for the whole `i64` day range
/// PostgreSQL can produce.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `HH:MM:SS[.ffffff]` for microseconds since midnight.
fn push_time(out: &mut Vec<u8>, usecs: i64) -> Result<(), Bad> {
    if !(0..=USECS_PER_DAY).contains(&usecs) {
        return Err(Bad("time of day out of range"));
    }
    let usecs = usecs.unsigned_abs();
    push_padded(out, usecs / USECS_PER_HOUR as u64, 2);
    out.push(b':');
    push_padded(out, usecs / USECS_PER_MINUTE as u64 % 60, 2);
    out.push(b':');
    push_padded(out, usecs / USECS_PER_SEC as u64 % 60, 2);
    push_fraction(out, usecs % USECS_PER_SEC as u64);
    Ok(())
}

/// Appends `.ffffff` with trailing zeros trimmed; nothing for zero.
fn push_fraction(out: &mut Vec<u8>, usec: u64) {
    if usec == 0 {
        return;
    }
    out.push(b'.');
    let start = out.len();
    push_padded(out, usec, 6);
    while out.len() > start + 1 && out.last() == Some(&b'0') {
        out.pop();
    }
}

/// Appends a UTC offset east in seconds as `+HH:MM` (`:SS` if needed).
fn push_offset(out: &mut Vec<u8>, east: i64) {
    out.push(if east < 0 { b'-' } else { b'+' });
    let a = east.unsigned_abs();
    push_padded(out, a / 3600, 2);
    out.push(b':');
    push_padded(out, a / 60 % 60, 2);
    if !a.is_multiple_of(60) {
        out.push(b':');
        push_padded(out, a % 60, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(f: fn(&mut Vec<u8>, &[u8]) -> Result<(), Bad>, buf: &[u8]) -> String {
        let mut out = Vec::new();
        f(&mut out, buf).expect("decodes");
        String::from_utf8(out).expect("utf8")
    }

    fn iv(time: i64, days: i32, months: i32) -> Vec<u8> {
        [
            &time.to_be_bytes()[..],
            &days.to_be_bytes(),
            &months.to_be_bytes(),
        ]
        .concat()
    }

    #[test]
    fn dates() {
        for (days, want) in [
            (0, "2000-01-01"),
            (-1, "1999-12-31"),
            (59, "2000-02-29"),
            (-730_119, "0001-01-01"),
            (-730_120, "0001-12-31 BC"),
            (-746_117, "0044-03-15 BC"),
            (-2_451_179, "4713-11-24 BC"),
            (2_145_031_948, "5874897-12-31"),
            (i32::MAX, "infinity"),
            (i32::MIN, "-infinity"),
        ] {
            assert_eq!(
                show(date, &days.to_be_bytes()),
                format!("\"{want}\""),
                "{days}"
            );
        }
    }

    #[test]
    fn times_and_timestamps() {
        assert_eq!(show(time, &0i64.to_be_bytes()), "\"00:00:00\"");
        assert_eq!(show(time, &(USECS_PER_DAY).to_be_bytes()), "\"24:00:00\"");
        assert_eq!(
            show(time, &(45_296_500_000i64).to_be_bytes()),
            "\"12:34:56.5\""
        );
        let tz = [
            &45_296_000_001i64.to_be_bytes()[..],
            &(-19_800i32).to_be_bytes(),
        ]
        .concat();
        assert_eq!(show(timetz, &tz), "\"12:34:56.000001+05:30\"");
        let ts = |v: i64, utc| {
            let mut out = Vec::new();
            timestamp(&mut out, &v.to_be_bytes(), utc).expect("decodes");
            String::from_utf8(out).expect("utf8")
        };
        assert_eq!(ts(0, false), "\"2000-01-01T00:00:00\"");
        assert_eq!(ts(-1, true), "\"1999-12-31T23:59:59.999999Z\"");
        assert_eq!(ts(i64::MAX, true), "\"infinity\"");
        assert_eq!(ts(i64::MIN, false), "\"-infinity\"");
    }

    #[test]
    fn intervals() {
        let hour = USECS_PER_HOUR;
        for (time, days, months, want) in [
            (0, 0, 0, "PT0S"),
            (
                4 * hour + 5 * USECS_PER_MINUTE + 6_500_000,
                3,
                14,
                "P1Y2M3DT4H5M6.5S",
            ),
            (0, -1, 0, "P-1D"),
            (-(hour + 30 * USECS_PER_MINUTE), 0, 0, "PT-1H-30M"),
            (-500_000, 0, 0, "PT-0.5S"),
            (0, 0, -13, "P-1Y-1M"),
            (1, 0, 0, "PT0.000001S"),
        ] {
            assert_eq!(
                show(interval, &iv(time, days, months)),
                format!("\"{want}\"")
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        let mut out = Vec::new();
        assert!(time(&mut out, &(-1i64).to_be_bytes()).is_err());
        assert!(interval(&mut out, &[0; 15]).is_err());
        assert!(timetz(&mut out, &[0; 11]).is_err());
        assert!(date(&mut out, &[0; 3]).is_err());
    }
}
