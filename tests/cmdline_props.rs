//! Whatever the kernel hands us, parsing, planning and explaining never panic.

use proptest::prelude::*;
use ramboot::cmdline::{explain, explain_json, parse, parse_bytes, plan, Opt};

/// Words built from known names and awkward characters, to reach deep into the planner.
fn word() -> impl Strategy<Value = String> {
    let names: Vec<&'static str> = Opt::ALL
        .iter()
        .map(|o| o.name())
        .chain(["console", "s", "single", "1", "--", "no"])
        .collect();
    (
        prop::sample::select(names),
        prop::option::of("[-a-zA-Z0-9=:,;./\"{} \\t]{0,24}"),
        any::<bool>(),
    )
        .prop_map(|(name, value, negate)| {
            let name = if negate {
                format!("no{name}")
            } else {
                name.to_string()
            };
            match value {
                Some(v) => format!("{name}={v}"),
                None => name,
            }
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let options = parse_bytes(&bytes);
        let plan = plan(&options);
        let _ = explain(&options, &plan);
        let _ = explain_json(&options, &plan);
    }

    #[test]
    fn option_soup_never_panics(words in prop::collection::vec(word(), 0..24)) {
        let text = words.join(" ");
        let options = parse(&text);
        let plan = plan(&options);
        let _ = explain(&options, &plan);
        let json = explain_json(&options, &plan);
        let framed = json.starts_with('{') && json.ends_with('}');
        prop_assert!(framed, "not a JSON object: {}", json);
    }

    #[test]
    fn last_setting_wins(a in "[a-z0-9]{1,8}", b in "[a-z0-9]{1,8}") {
        let options = parse(&format!("pkgs={a} pkgs={b}"));
        prop_assert_eq!(
            options.last(Opt::Pkgs),
            Some(&ramboot::cmdline::Setting::Value(b))
        );
    }
}
