// UTF-8 helpers and the GPT-2 byte <-> unicode mapping used by byte-level BPE.
// Internal to src/tokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace inferd::tok {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence announced by `lead`, judged from its high nibble only
// (continuation and invalid lead bytes count as 1). This is how SentencePiece-style
// tokenization cuts text into initial symbols.
size_t Utf8LenFromLead(uint8_t lead);

// Decodes one strictly valid code point at s[*pos] and advances *pos. On an invalid or
// truncated sequence returns false and advances *pos by one byte.
bool DecodeUtf8(std::string_view s, size_t* pos, uint32_t* cp);
void AppendUtf8(uint32_t cp, std::string* out);

// Copy of `s` where every byte that does not start a valid sequence becomes U+FFFD
// (so the result is valid UTF-8, as llama.cpp's code-point conversion does).
std::string SanitizeUtf8(std::string_view s);
bool IsValidUtf8(std::string_view s);

// Number of trailing bytes of `s` that form an incomplete-but-valid UTF-8 prefix (0..3):
// bytes that could still become a character when more bytes arrive.
size_t IncompleteUtf8Tail(std::string_view s);

// Unicode White_Space (what llama.cpp's pre-tokenizers treat as \s).
bool IsUnicodeWhitespace(uint32_t cp);

// GPT-2 byte-level mapping: every byte has a printable code point (as UTF-8).
const std::string& ByteToUnicode(uint8_t b);
// Appends the bytes a byte-level token text stands for. Characters outside the mapping are
// copied through unchanged (their UTF-8 bytes).
void UnicodeToBytes(std::string_view text, std::string* out);

}  // namespace inferd::tok
