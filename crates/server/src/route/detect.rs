//! The personal-data detector: whether a request's text holds an e-mail
//! address, a phone number, a US social security number, a payment card
//! number (Luhn-checked), an IBAN (mod-97-checked), an IPv4 or IPv6
//! address, or one of the operator's patterns or keywords.
//!
//! Candidates are found with regexes and then checked where a checksum or a
//! range exists, so that order numbers and dates rarely count. It errs on
//! the side of keeping a request local: a false positive costs a local
//! answer, a false negative sends personal data out.

use regex::{Regex, RegexSet};

/// The compiled detector.
#[derive(Debug)]
pub struct Detector {
    email: Regex,
    ssn: Regex,
    card: Regex,
    iban: Regex,
    ipv4: Regex,
    ipv6: Regex,
    phone: Regex,
    patterns: RegexSet,
    keywords: Vec<String>,
}

impl Detector {
    /// The built-in checks plus `patterns` (checked valid when the config
    /// was read) and `keywords`.
    pub fn new(patterns: &[String], keywords: &[String]) -> Result<Detector, regex::Error> {
        let re = |p: &str| Regex::new(p).expect("built-in pattern");
        Ok(Detector {
            email: re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
            ssn: re(r"\b(\d{3})[- ](\d{2})[- ](\d{4})\b"),
            card: re(r"\b\d(?:[ -]?\d){12,18}\b"),
            iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
            ipv4: re(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b"),
            ipv6: re(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"),
            // International (`+44 20 7946 0958`) or North American
            // (`(415) 555-0132`, `415-555-0132`) forms.
            phone: re(
                r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}|\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b",
            ),
            patterns: RegexSet::new(patterns)?,
            keywords: keywords.iter().map(|k| k.to_lowercase()).collect(),
        })
    }

    /// What kind of personal data `text` holds first found, if any:
    /// `email`, `ssn`, `card`, `iban`, `ip`, `phone`, `pattern` or
    /// `keyword`.
    pub fn find(&self, text: &str) -> Option<&'static str> {
        if self.email.is_match(text) {
            return Some("email");
        }
        if self.ssn.captures_iter(text).any(|c| {
            let part = |i: usize| c.get(i).map_or("", |m| m.as_str());
            ssn_valid(part(1), part(2), part(3))
        }) {
            return Some("ssn");
        }
        if self.card.find_iter(text).any(|m| luhn_valid(m.as_str())) {
            return Some("card");
        }
        if self.iban.find_iter(text).any(|m| iban_valid(m.as_str())) {
            return Some("iban");
        }
        let ipv4 = self.ipv4.captures_iter(text).any(|c| {
            (1..=4).all(|i| {
                c.get(i)
                    .and_then(|m| m.as_str().parse::<u8>().ok())
                    .is_some()
            })
        });
        let ipv6 = self.ipv6.find_iter(text).any(|m| {
            m.as_str().matches(':').count() >= 2 && m.as_str().parse::<std::net::Ipv6Addr>().is_ok()
        });
        if ipv4 || ipv6 {
            return Some("ip");
        }
        if self.phone.find_iter(text).any(|m| {
            let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
            (7..=15).contains(&digits)
        }) {
            return Some("phone");
        }
        if self.patterns.is_match(text) {
            return Some("pattern");
        }
        let lower = text.to_lowercase();
        if self.keywords.iter().any(|k| lower.contains(k.as_str())) {
            return Some("keyword");
        }
        None
    }
}

/// A US SSN's area, group and serial: none all zeros, area not 666 nor
/// 900-999 (never issued).
fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// The Luhn check of a card number, spaces and dashes ignored (13 to 19
/// digits).
fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2 == 1, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 check of an IBAN: the first four characters moved to the
/// end, letters as 10..35, the number mod 97 is 1.
fn iban_valid(iban: &str) -> bool {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rotated = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for c in rotated {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(&[r"ACME-\d{6}".to_owned()], &["Project Falcon".to_owned()]).unwrap()
    }

    #[test]
    fn personal_data_is_found() {
        let d = detector();
        for (text, kind) in [
            ("write to jane.doe@example.org today", "email"),
            ("my SSN is 123-45-6789", "ssn"),
            ("card 4111 1111 1111 1111 exp 12/29", "card"),
            ("pay to GB82 WEST 1234 5698 7654 32 please", "iban"),
            ("pay to DE89370400440532013000", "iban"),
            ("the host 192.168.1.20 is down", "ip"),
            ("ssh to 2001:db8::8a2e:370:7334 now", "ip"),
            ("call me at +1 415 555 0132", "phone"),
            ("call (415) 555-0132", "phone"),
            ("ticket ACME-123456 again", "pattern"),
            ("about project falcon's launch", "keyword"),
        ] {
            assert_eq!(d.find(text), Some(kind), "{text}");
        }
    }

    #[test]
    fn ordinary_text_is_not_flagged() {
        let d = detector();
        for text in [
            "Write a haiku about the sea.",
            "The year 2024 had 366 days; version 1.2.3 shipped.",
            "It is 12:30:45 now, order 4111111111111112 (bad Luhn)",
            "SSN 000-12-3456 is not valid, nor 987-65-4321",
            "GB00 WEST 1234 5698 7654 32 fails its check",
            "999.1.1.1 is no address",
        ] {
            assert_eq!(d.find(text), None, "{text}");
        }
    }

    #[test]
    fn checksums() {
        assert!(luhn_valid("4111-1111-1111-1111"));
        assert!(!luhn_valid("4111-1111-1111-1112"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("GB82WEST12345698765433"));
    }
}
