use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

fn run(cfg: GenConfig) -> Vec<(Vec<u8>, GenMeta)> {
    let mut generator = Generator::new(cfg);
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        match generator.next_event(&mut line) {
            Some(meta) => out.push((line, meta)),
            None => return out,
        }
    }
}

fn small(seed: u64) -> GenConfig {
    GenConfig { seed, customers: 300, days: 2, ..GenConfig::default() }
}

fn faulty(seed: u64) -> GenConfig {
    GenConfig { bad_rate: 0.05, duplicate_rate: 0.05, ..small(seed) }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the RFC 3339 shapes the generator writes: `…sss` or whole seconds, `Z` or
/// `±HH:MM`. The flag says whole seconds (the instant truncated to its second).
fn parse_rfc3339(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let (ms, zone) = if b[19] == b'.' { (num(20..23)?, 23) } else { (0, 19) };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let offset = match (&s[zone..], b.get(zone)) {
        ("Z", _) => 0,
        (z, Some(&sign)) if z.len() == 6 && (sign == b'+' || sign == b'-') && b[zone + 3] == b':' => {
            let minutes = num(zone + 1..zone + 3)? * 60 + num(zone + 4..zone + 6)?;
            if sign == b'+' { minutes * 60_000 } else { -minutes * 60_000 }
        }
        _ => return None,
    };
    let at = days_from_civil(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + sec) * 1_000 + ms - offset;
    Some((at, zone == 19))
}

fn is_channel(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

const TYPES: [&str; 8] =
    ["touch", "contact", "reply", "request_opened", "request_resolved", "conversion", "error", "abandon"];

/// Checks one valid line against SPEC §1 and returns its parsed object.
fn check_event(line: &[u8], meta: &GenMeta) -> serde_json::Map<String, Value> {
    let text = std::str::from_utf8(line).expect("utf-8");
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let obj = value.as_object().unwrap_or_else(|| panic!("not an object: {text}")).clone();
    let string = |k: &str| obj.get(k).and_then(Value::as_str);

    let id = string("event_id").expect("event_id");
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    let (ts, whole_seconds) = match obj.get("ts") {
        Some(Value::String(s)) => parse_rfc3339(s).unwrap_or_else(|| panic!("ts in {text}")),
        Some(Value::Number(n)) => (n.as_i64().unwrap_or_else(|| panic!("ts in {text}")), false),
        _ => panic!("ts in {text}"),
    };
    let written = if whole_seconds { meta.ts - meta.ts.rem_euclid(1_000) } else { meta.ts };
    assert_eq!(ts, written, "{text}");
    match meta.anonymous {
        None => assert_eq!(string("customer_id"), Some(customer_id(meta.customer).as_str())),
        Some(identity) => {
            assert!(!obj.contains_key("customer_id"), "{text}");
            let ids = obj.get("identities").and_then(Value::as_object).unwrap_or_else(|| panic!("{text}"));
            // The smallest identity, bytewise by type then value (SPEC §6).
            let smallest = ids.iter().min_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
            let smallest = smallest.map(|(t, v)| format!("{t}:{}", v.as_str().unwrap_or_default()));
            assert_eq!(smallest, Some(identity.to_string()), "{text}");
            assert_eq!(meta.key(), identity.to_string());
        }
    }
    if let Some(ids) = obj.get("identities") {
        let ids = ids.as_object().unwrap_or_else(|| panic!("identities is an object: {text}"));
        assert!((1..=8).contains(&ids.len()), "{text}");
        for (t, v) in ids {
            let v = v.as_str().unwrap_or_else(|| panic!("{text}"));
            assert!(["cookie", "phone", "loyalty"].contains(&t.as_str()), "{text}");
            assert!((1..=256).contains(&v.len()), "{text}");
        }
    }
    if let Some(j) = obj.get("journey_id") {
        let j = j.as_str().expect("journey_id is a string");
        assert!(j.starts_with("case-") && j.len() >= 11 && j.len() <= 128, "{text}");
    }
    assert!(is_channel(string("channel").expect("channel")), "{text}");
    let kind = string("type").expect("type");
    assert!(TYPES.contains(&kind), "{text}");
    if let Some(step) = obj.get("step") {
        let step = step.as_str().expect("step is a string");
        assert!((1..=64).contains(&step.len()), "{text}");
    }
    if let Some(v) = obj.get("value") {
        assert_eq!(kind, "conversion", "{text}");
        let v = v.as_f64().expect("value is a number");
        assert!(v.is_finite() && v >= 0.0, "{text}");
        let raw = text.split("\"value\":").nth(1).unwrap_or_default();
        let digits: String = raw.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        assert_eq!(digits.split('.').nth(1).map(str::len), Some(2), "two decimals: {text}");
    } else {
        assert_ne!(kind, "conversion", "{text}");
    }
    if let Some(a) = obj.get("attrs") {
        assert!(a.is_object(), "{text}");
    }
    obj
}

#[test]
fn same_seed_same_bytes() {
    let a = run(faulty(7));
    let b = run(faulty(7));
    assert!(a.len() > 1_000);
    assert_eq!(a, b);

    let mut w1 = Vec::new();
    let mut w2 = Vec::new();
    Generator::new(faulty(7)).write_to(&mut w1, None).expect("vec write");
    Generator::new(faulty(7)).write_to(&mut w2, None).expect("vec write");
    assert_eq!(w1, w2);
    let joined: Vec<u8> = a.iter().flat_map(|(l, _)| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(w1, joined);
}

#[test]
fn different_seed_different_bytes() {
    let a = run(small(1));
    let b = run(small(2));
    assert_ne!(a, b);
    let ids_a: HashSet<_> = a.iter().map(|(l, _)| l[..30].to_vec()).collect();
    assert!(b.iter().all(|(l, _)| !ids_a.contains(&l[..30])), "event ids depend on the seed");
}

#[test]
fn every_good_line_follows_the_spec() {
    let lines = run(faulty(3));
    let mut ids = HashSet::new();
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut events, mut dups) = (0, 0);
    for (line, meta) in &lines {
        match meta.kind {
            LineKind::Event => {
                let obj = check_event(line, meta);
                let id = obj["event_id"].as_str().unwrap_or_default().to_owned();
                assert!(ids.insert(id.clone()), "event_id repeated: {id}");
                by_id.insert(id, line.clone());
                events += 1;
            }
            LineKind::Duplicate => {
                let obj = check_event(line, meta);
                let id = obj["event_id"].as_str().unwrap_or_default();
                assert_eq!(by_id.get(id), Some(line), "a duplicate repeats an earlier line exactly");
                dups += 1;
            }
            LineKind::Malformed(_) => {}
        }
    }
    assert!(events > 1_000 && dups > 10, "{events} events, {dups} duplicates");
}

#[test]
fn malformed_lines_are_malformed_as_announced() {
    let lines = run(GenConfig { bad_rate: 0.2, ..small(5) });
    let mut seen = HashSet::new();
    for (line, meta) in &lines {
        let LineKind::Malformed(kind) = meta.kind else {
            continue;
        };
        seen.insert(kind);
        let text = std::str::from_utf8(line).expect("utf-8");
        let parsed = serde_json::from_str::<Value>(text);
        if kind == BadKind::InvalidJson {
            assert!(parsed.is_err(), "{text}");
            continue;
        }
        let value = parsed.unwrap_or_else(|e| panic!("{e}: {text}"));
        if kind == BadKind::NotObject {
            assert!(!value.is_object(), "{text}");
            continue;
        }
        let obj = value.as_object().expect("object");
        let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
        match kind {
            BadKind::MissingField => assert!(!obj.contains_key("customer_id"), "{text}"),
            BadKind::BadChannel => assert!(!is_channel(s("channel")), "{text}"),
            BadKind::BadTs => assert!(parse_rfc3339(s("ts")).is_none() && !s("ts").is_empty(), "{text}"),
            BadKind::UnknownType => assert!(!TYPES.contains(&s("type")), "{text}"),
            BadKind::NegativeValue => {
                assert!(obj["value"].as_f64().is_some_and(|v| v < 0.0), "{text}")
            }
            BadKind::WrongType => assert!(obj["customer_id"].is_number(), "{text}"),
            BadKind::InvalidJson | BadKind::NotObject => unreachable!(),
        }
        assert!(!kind.expected_reason().is_empty());
    }
    assert_eq!(seen.len(), BadKind::ALL.len(), "every kind is injected in turn");
}

#[test]
fn no_bad_rate_no_malformed_lines() {
    for (line, meta) in run(GenConfig { duplicate_rate: 0.1, ..small(9) }) {
        assert!(!matches!(meta.kind, LineKind::Malformed(_)));
        check_event(&line, &meta);
    }
}

#[test]
fn disorder_stays_within_bound() {
    for disorder_ms in [0, 2_000, 60_000] {
        let cfg = GenConfig { disorder_ms, duplicate_rate: 0.05, bad_rate: 0.01, ..small(11) };
        let lines = run(cfg);
        let mut max_ts = i64::MIN;
        let mut behind = 0;
        for (_, meta) in &lines {
            assert!(meta.ts >= max_ts.saturating_sub(disorder_ms), "{} behind {max_ts}", meta.ts);
            behind += i64::from(meta.ts < max_ts);
            max_ts = max_ts.max(meta.ts);
        }
        if disorder_ms == 0 {
            assert_eq!(behind, 0);
        } else {
            assert!(behind > 0, "disorder {disorder_ms} produced no out-of-order event");
        }
    }
}

#[test]
fn faults_do_not_change_the_stories() {
    let clean = run(small(13));
    let noisy = run(faulty(13));
    let firsts: Vec<_> = noisy.iter().filter(|(_, m)| m.kind != LineKind::Duplicate).collect();
    assert_eq!(clean.len(), firsts.len());
    for ((clean_line, clean_meta), (line, meta)) in clean.iter().zip(firsts) {
        assert_eq!((clean_meta.ts, clean_meta.customer), (meta.ts, meta.customer));
        if meta.kind == LineKind::Event {
            assert_eq!(clean_line, line);
        }
    }
}

#[test]
fn every_customer_appears_with_realistic_journeys() {
    let cfg = small(17);
    let n = cfg.customers;
    let lines = run(cfg.clone());
    let mut customers = HashSet::new();
    let mut threads: HashMap<String, u64> = HashMap::new();
    let mut types: HashMap<String, usize> = HashMap::new();
    let mut channels = HashSet::new();
    for (line, meta) in &lines {
        let obj = check_event(line, meta);
        assert!(meta.customer < n);
        assert!(meta.ts >= cfg.start_ms);
        customers.insert(meta.customer);
        if let Some(j) = obj.get("journey_id").and_then(Value::as_str) {
            let owner = *threads.entry(j.to_owned()).or_insert(meta.customer);
            assert_eq!(owner, meta.customer, "a case belongs to one customer");
        }
        *types.entry(obj["type"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        channels.insert(obj["channel"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(customers.len() as u64, n);
    assert!(!threads.is_empty());
    for t in TYPES {
        assert!(types.get(t).is_some_and(|&c| c > 0), "no {t} event: {types:?}");
    }
    for c in ["web", "app", "phone", "chat", "whatsapp", "email", "social", "store", "kiosk"] {
        assert!(channels.contains(c), "no {c} event");
    }
}

#[test]
fn empty_configs_end_at_once() {
    let mut line = Vec::new();
    assert!(Generator::new(GenConfig { customers: 0, ..GenConfig::default() }).next_event(&mut line).is_none());
    assert!(Generator::new(GenConfig { days: 0, ..GenConfig::default() }).next_event(&mut line).is_none());
    assert!(line.is_empty());
    let mut one = Generator::new(GenConfig { customers: 1, ..GenConfig::default() });
    assert!(one.next_event(&mut line).is_some());
}

#[test]
fn write_to_resumes() {
    let mut whole = Vec::new();
    Generator::new(small(19)).write_to(&mut whole, None).expect("vec write");
    let mut g = Generator::new(small(19));
    let mut parts = Vec::new();
    assert_eq!(g.write_to(&mut parts, Some(10)).expect("vec write"), 10);
    assert_eq!(parts.iter().filter(|&&b| b == b'\n').count(), 10);
    g.write_to(&mut parts, None).expect("vec write");
    assert_eq!(whole, parts);
}

#[test]
fn customer_ids() {
    assert_eq!(customer_id(42), "cust-0000042");
    assert_eq!(customer_id(0), "cust-0000000");
    assert_eq!(customer_id(12_345_678), "cust-12345678");
    let p = Permutation::new(1_000, 1);
    let all: HashSet<u64> = (0..1_000).map(|i| p.apply(i)).collect();
    assert_eq!(all.len(), 1_000);
    assert!(all.iter().all(|&c| c < 1_000));
}

#[test]
fn hundred_thousand_events() {
    let cfg = GenConfig { customers: 20_000, days: 2, bad_rate: 0.001, duplicate_rate: 0.001, ..GenConfig::default() };
    let mut g = Generator::new(cfg);
    let mut sink = Vec::new();
    let lines = g.write_to(&mut sink, Some(100_000)).expect("vec write");
    assert_eq!(lines, 100_000);
    assert!(g.heap.len() <= 20_000 + 1_000, "one pending event per customer, plus copies");
    assert!(std::mem::size_of::<Pending>() <= 128, "{} bytes per pending event", std::mem::size_of::<Pending>());
}

fn identities(seed: u64) -> GenConfig {
    GenConfig { identities: true, ..small(seed) }
}

/// FNV-1a: a pinned digest of generated bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn identities_off_output_is_unchanged() {
    // Digests of the output before identity stories existed: off, not a byte may move.
    for (cfg, lines, len, digest) in [
        (GenConfig { timestamps: Timestamps::Generator, ..faulty(7) }, 7_069, 1_063_996, 0x891c_2b02_77a1_9fb4),
        (
            GenConfig { timestamps: Timestamps::Generator, ..GenConfig::default() },
            11_386,
            1_721_443,
            0x1cb2_473c_a0d0_9a2e,
        ),
    ] {
        assert!(!cfg.identities);
        let mut out = Vec::new();
        assert_eq!(Generator::new(cfg).write_to(&mut out, None).expect("vec write"), lines);
        assert_eq!((out.len(), fnv(&out)), (len, digest));
        assert!(!out.windows(12).any(|w| w == b"\"identities\""));
    }
    for (_, meta) in run(faulty(7)) {
        assert_eq!(meta.anonymous, None);
        assert_eq!(meta.key(), customer_id(meta.customer), "Kafka key: customer_id");
    }
}

#[test]
fn identities_same_seed_same_bytes() {
    let cfg = GenConfig { bad_rate: 0.05, duplicate_rate: 0.05, ..identities(7) };
    let a = run(cfg.clone());
    let b = run(cfg.clone());
    assert!(a.len() > 1_000);
    assert_eq!(a, b);
    let mut w1 = Vec::new();
    Generator::new(cfg).write_to(&mut w1, None).expect("vec write");
    let joined: Vec<u8> = a.iter().flat_map(|(l, _)| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(w1, joined);
    assert_ne!(a, run(GenConfig { bad_rate: 0.05, duplicate_rate: 0.05, ..identities(8) }));
    assert_ne!(run(identities(7)), run(small(7)));
}

/// Every valid line decodes in the engine as what the generator says it is; malformed lines
/// are rejected with the announced reason, anonymous ones too.
#[test]
fn identity_lines_decode() {
    let lines = run(GenConfig { bad_rate: 0.05, duplicate_rate: 0.05, disorder_ms: 60_000, ..identities(3) });
    let (mut anonymous, mut linking, mut known, mut bad_anonymous) = (0, 0, 0, HashSet::new());
    let mut keys = HashSet::new();
    for (line, meta) in &lines {
        let decoded = omnimeter_engine::decode(line);
        match meta.kind {
            LineKind::Event | LineKind::Duplicate => {
                check_event(line, meta);
                let event = decoded.unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
                assert_eq!(event.routing_key(), meta.key(), "Kafka key");
                keys.insert(meta.key());
                match (&event.customer_id, event.identities.is_empty()) {
                    (None, false) => anonymous += 1,
                    (Some(_), false) => linking += 1,
                    (Some(_), true) => known += 1,
                    (None, true) => panic!("an event with neither customer_id nor identities"),
                }
                assert_eq!(event.customer_id.is_none(), meta.anonymous.is_some());
            }
            LineKind::Malformed(kind) => {
                let reason = decoded.err().map(|r| r.as_str());
                assert_eq!(reason, Some(kind.expected_reason()), "{}", String::from_utf8_lossy(line));
                if meta.anonymous.is_some() {
                    bad_anonymous.insert(kind);
                }
            }
        }
    }
    assert!(anonymous > 500 && linking > 100 && known > 1_000, "{anonymous} anonymous, {linking} linking, {known}");
    assert_eq!(bad_anonymous.len(), BadKind::ALL.len(), "every kind of fault hits anonymous events too");
    for prefix in ["cookie:ck-", "phone:+346", "phone:+3491", "loyalty:L", "cust-"] {
        assert!(keys.iter().any(|k| k.starts_with(prefix)), "no key {prefix}…");
    }
}

#[test]
fn identity_stories_keep_the_generator_promises() {
    let cfg = GenConfig { duplicate_rate: 0.05, bad_rate: 0.02, ..identities(13) };
    // Faults do not change the stories.
    let clean = run(identities(13));
    let noisy = run(cfg.clone());
    let firsts: Vec<_> = noisy.iter().filter(|(_, m)| m.kind != LineKind::Duplicate).collect();
    assert_eq!(clean.len(), firsts.len());
    for ((clean_line, clean_meta), (line, meta)) in clean.iter().zip(firsts) {
        assert_eq!(
            (clean_meta.ts, clean_meta.customer, clean_meta.anonymous),
            (meta.ts, meta.customer, meta.anonymous)
        );
        if meta.kind == LineKind::Event {
            assert_eq!(clean_line, line);
        }
    }
    // Disorder bound, duplicates repeat their line.
    let mut max_ts = i64::MIN;
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    for (line, meta) in &noisy {
        assert!(meta.ts >= max_ts.saturating_sub(cfg.disorder_ms));
        max_ts = max_ts.max(meta.ts);
        if meta.kind == LineKind::Malformed(BadKind::InvalidJson) {
            continue;
        }
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(line) {
            let id = obj["event_id"].as_str().unwrap_or_default().to_owned();
            match meta.kind {
                LineKind::Event => drop(by_id.insert(id, line.clone())),
                LineKind::Duplicate => assert_eq!(by_id.get(&id), Some(line)),
                LineKind::Malformed(_) => {}
            }
        }
    }
    // All channels and types, realistic identities per channel.
    let mut types = HashSet::new();
    let mut channels = HashSet::new();
    for (line, meta) in clean.iter().filter(|(_, m)| m.kind == LineKind::Event) {
        let obj = check_event(line, meta);
        let channel = obj["channel"].as_str().unwrap_or_default().to_owned();
        types.insert(obj["type"].as_str().unwrap_or_default().to_owned());
        if let Some(id) = meta.anonymous {
            let expected: &[&str] = match id {
                Identity::Cookie(_) => &["web"],
                Identity::Mobile(_) => &["phone", "whatsapp"],
                Identity::Landline(_) => &["phone"],
                Identity::Loyalty(_) => &["store"],
            };
            assert!(expected.contains(&channel.as_str()), "{}", String::from_utf8_lossy(line));
        }
        channels.insert(channel);
    }
    assert_eq!(types.len(), TYPES.len());
    for c in ["web", "app", "phone", "whatsapp", "store"] {
        assert!(channels.contains(c), "no {c} event");
    }
}

/// The identity input through the engine (SPEC §6, `EngineConfig::default()` resolves
/// identities): stitched journeys, anonymous customers and household conflicts.
#[test]
fn identity_stories_resolve_in_the_engine() {
    use omnimeter_engine::{EngineConfig, PartitionEngine};

    let cfg = GenConfig { customers: 400, duplicate_rate: 0.02, bad_rate: 0.01, ..identities(21) };
    let mut engine = PartitionEngine::new(EngineConfig::default(), 0);
    for (offset, (line, _)) in run(cfg).iter().enumerate() {
        engine.push(line, offset as i64);
    }
    engine.finish();
    let rows = engine.take_rows();
    assert!(rows.rejected.iter().all(|r| r.reason.as_str() != "late"), "the generator's disorder is within lateness");

    let stitched =
        rows.journeys.iter().filter(|j| j.anonymous_events > 0 && !j.customer_id.starts_with("anon:")).count();
    let anonymous: Vec<_> = rows.journeys.iter().filter(|j| j.customer_id.starts_with("anon:")).collect();
    assert!(stitched > 20, "{stitched} stitched journeys");
    assert!(anonymous.len() > 20, "{} anonymous journeys", anonymous.len());
    assert!(anonymous.iter().all(|j| j.anonymous_events == j.events));
    for kind in ["anon:cookie:ck-", "anon:phone:+346", "anon:loyalty:L"] {
        assert!(anonymous.iter().any(|j| j.customer_id.starts_with(kind)), "no {kind}… journey");
    }
    // Logged-in web journeys that began anonymously: stitched web journeys.
    assert!(rows.journeys.iter().any(|j| j.anonymous_events > 0
        && j.customer_id.starts_with("cust-")
        && j.path.starts_with("web")
        && j.outcome.as_str() == "converted"));

    let conflicts: Vec<_> = rows.identities.iter().filter(|r| r.conflict).collect();
    let links = rows.identities.len() - conflicts.len();
    assert!(links > 100, "{links} links");
    assert!(!conflicts.is_empty(), "no conflict");
    for c in &conflicts {
        // Only a household landline is linked by two customers, the two of the household.
        assert!(c.identity_type == "phone" && c.identity_value.starts_with("+3491"), "{c:?}");
        let owner = rows.identities.iter().find(|r| !r.conflict && r.identity_value == c.identity_value);
        let owner = owner.unwrap_or_else(|| panic!("no owner of {c:?}"));
        let n = |id: &str| id.strip_prefix("cust-").and_then(|n| n.parse::<u64>().ok());
        assert_ne!(owner.customer_id, c.customer_id);
        assert_eq!(n(&owner.customer_id).map(|n| n / 2), n(&c.customer_id).map(|n| n / 2), "{c:?}");
    }
}

#[test]
fn producers_timestamps_mix_every_form_and_one_form_is_only_that() {
    let text = |timestamps: Timestamps| {
        let cfg = GenConfig { customers: 300, seed: 5, timestamps, ..GenConfig::default() };
        let mut g = Generator::new(cfg);
        let mut out = Vec::new();
        g.write_to(&mut out, Some(3_000)).unwrap();
        String::from_utf8(out).unwrap()
    };
    let forms = |t: &str| -> [usize; 4] {
        let (mut z, mut secs, mut off, mut epoch) = (0, 0, 0, 0);
        for line in t.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            match &v["ts"] {
                Value::Number(_) => epoch += 1,
                Value::String(s) if s.len() == 24 && s.ends_with('Z') => z += 1,
                Value::String(s) if s.len() == 20 && s.ends_with('Z') => secs += 1,
                Value::String(s) if s.len() == 29 && (s.contains('+') || s[19..].contains('-')) => off += 1,
                other => panic!("unexpected ts {other}"),
            }
            assert!(omnimeter_engine::decode(line.as_bytes()).is_ok(), "{line}");
        }
        [z, secs, off, epoch]
    };
    let mix = forms(&text(Timestamps::Producers));
    assert!(mix.iter().all(|&n| n > 150), "every form in the mix: {mix:?}");
    assert_eq!(forms(&text(Timestamps::Offsets))[2], 3_000);
    assert_eq!(forms(&text(Timestamps::WholeSeconds))[1], 3_000);
    assert_eq!(forms(&text(Timestamps::Epoch))[3], 3_000);
    assert_eq!(forms(&text(Timestamps::Zulu))[0], 3_000);
}
