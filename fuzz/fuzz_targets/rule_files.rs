//! `cargo +nightly fuzz run rule_files`: any text loaded as a Prometheus rule file (YAML, the
//! PromQL of each rule, the templates of labels and annotations) is accepted or refused with
//! errors, never a panic or a stack overflow, however deep its YAML or expressions nest (on a
//! thread with a 128 KiB stack).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_alerter::rules::parse_str;
use vigil_alerter::template::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.to_owned();
    // On a small stack, as a reload's blocking thread might have: a parser that recurses per
    // level of nesting overflows here rather than on libFuzzer's 8 MiB main thread.
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            match parse_str(&text, "fuzz.yml") {
                Ok(_) => {}
                Err(errors) => assert!(!errors.is_empty()),
            }
            // The same text as one template string, as annotations hold them.
            let _ = Template::parse(&text);
        })
        .expect("thread")
        .join()
        .expect("no panic");
});
