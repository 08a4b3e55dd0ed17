//! MCAP repair and sealing of a corrupt or truncated file: any bytes give a report or an
//! error, and a repaired file reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("dtbridge-fuzz-repair-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (input, output) = (dir.join("in.mcap"), dir.join("out.mcap"));
    std::fs::write(&input, data).expect("the input file");
    if dtbridge::recorder::repair(&input, &output).is_ok() {
        let repaired = std::fs::read(&output).expect("the repaired file");
        for message in mcap::MessageStream::new(&repaired).expect("an MCAP file") {
            message.expect("a readable message");
        }
    }
    // The recorder seals its own file after a write error, in whatever state the disk left
    // it: sealing either succeeds or says why.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&input);
    _ = dtbridge::fuzzing::seal(&file.expect("the input file"));
});
