//! Error messages as users read them.

/// `text` without the backtrace frames some errors carry (candle attaches one to its errors when
/// `RUST_BACKTRACE` is set): a frame is a numbered symbol line (`   3: candle_core::…`) with its
/// `at file:line:column` line. The message itself is kept whole.
pub fn without_backtrace(text: &str) -> String {
    let is_frame = |line: &str| {
        let line = line.trim_start();
        let numbered = line
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let location = line.strip_prefix("at ").is_some_and(|place| {
            let mut parts = place.rsplitn(3, ':');
            let number = |part: Option<&str>| part.is_some_and(|p| p.parse::<u32>().is_ok());
            number(parts.next()) && number(parts.next())
        });
        numbered || location
    };
    // What followed a backtrace in the message continues the line before it (`{error}\n{frames}; more`).
    let mut plain = String::new();
    let mut after_frames = false;
    for line in text.lines() {
        if is_frame(line) {
            after_frames = true;
            continue;
        }
        if !plain.is_empty() && !after_frames {
            plain.push('\n');
        }
        plain.push_str(line);
        after_frames = false;
    }
    plain.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_and_the_message_stays() {
        let captured = "shape mismatch in set, lhs: [784, 256], rhs: [2, 64]\n   0: candle_core::error::Error::bt\n             at /root/.cargo/registry/src/candle-core-0.11/src/error.rs:260:25\n   1: gantry::train::session::Session::restore\n             at ./src/train/session.rs:611:9\n; trying the one before";
        assert_eq!(
            without_backtrace(captured),
            "shape mismatch in set, lhs: [784, 256], rhs: [2, 64]; trying the one before"
        );
        let plain = "runs/a: no checkpoint could be read (step 10: bad file)\nsecond line: at noon";
        assert_eq!(without_backtrace(plain), plain);
    }
}
