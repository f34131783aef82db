// The routing key of a request (docs/router.md): the text a replica's prefix cache would see
// first, and chained hashes of its blocks, so that two requests sharing a prompt prefix
// share their leading block hashes. The router has no tokenizer: blocks are bytes of text.
// Pure functions; no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace inferd::router {

// From a parsed OpenAI request body, at most max_bytes of:
// - path "/v1/chat/completions": `tools` (as JSON) first, then each message in order as
//   role + "\n" + text + "\n": string content, or for array content the "text" of each text
//   part (other parts contribute their "type"), plus an assistant's tool_calls as JSON;
// - path "/v1/completions": `prompt` if a string; its first element if an array of strings;
//   decimal token ids joined by ' ' for an array of ints (or the first of an array of arrays);
// - anything else: "". Fields of unexpected types are skipped; never throws. `tools` and
//   tool_calls nested deeper than kMaxJsonDepth (util/json.h) are skipped too, so a body
//   parsed without a depth bound cannot overflow the stack here.
std::string PromptPrefixText(const nlohmann::json& body, std::string_view path, size_t max_bytes);

// Chained 64-bit hashes of the complete block_bytes-sized blocks of `text` (a trailing
// partial block is not hashed), at most max_blocks: h[0] = H(seed, block 0),
// h[i] = H(h[i-1], block i), so h[i] names the whole prefix up to block i. Deterministic
// across runs and machines (util/hash.h).
std::vector<uint64_t> BlockHashes(std::string_view text, size_t block_bytes, size_t max_blocks);

}  // namespace inferd::router
