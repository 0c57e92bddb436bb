/* Wine 8 lacks bcryptprimitives.dll, which Rust's standard library uses for randomness
   on Windows (ProcessPrng). This test-only stand-in forwards to RtlGenRandom. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return RtlGenRandom(data, (ULONG)len);
}
