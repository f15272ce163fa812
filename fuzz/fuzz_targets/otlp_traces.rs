#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weft_fuzzing::otlp_traces(data));
