// A harness with a planted bug, run by the fuzz suite as a test that must
// fail: it proves that a heap overflow under this build's flags reaches
// libFuzzer, run_fuzzer.py and meson as a failure, never as a pass or a
// skip. The seed corpus (selftest-corpus/) holds the input that triggers
// it.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr char k_trigger[] = "KTC-FUZZ-SELFTEST";
  constexpr size_t k_length = sizeof k_trigger - 1;
  if (size >= k_length && std::memcmp(data, k_trigger, k_length) == 0) {
    std::vector<uint8_t> copy(data, data + size);
    // One byte past the end: AddressSanitizer must report it.
    volatile uint8_t past = copy.data()[size];
    (void)past;
  }
  return 0;
}
