// One flat batch of the forward pass: rows from any number of sequences, each a contiguous
// slice with its own positions and KV block table (prefill chunks and decodes mixed).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace inferd {
namespace ops {

// The rows of one sequence in a flat batch, for paged attention.
struct AttnSeq {
  int64_t token_begin = 0;   // first row of this sequence in the flat batch
  int64_t num_tokens = 0;    // rows in this batch
  int64_t context_len = 0;   // tokens in KV after this step (= positions + 1 of the last row)
  const int32_t* block_table = nullptr;  // KV group 0's (the only group of most models)
};

}  // namespace ops

struct ForwardBatch {
  std::vector<int32_t> token_ids;    // [T]
  std::vector<int32_t> positions;    // [T] position of each row within its sequence
  std::vector<ops::AttnSeq> seqs;    // row ranges and block tables
  std::vector<int64_t> logits_rows;  // rows whose logits are wanted, in output order
  // With more than one KV group (kv/kv_layout.h): seqs[i]'s block table of group g is
  // group_block_tables[i * num_groups + g]. Empty with one group.
  std::vector<const int32_t*> group_block_tables;

  // Starts a sequence of `num_rows` rows whose KV context ends at `context_len`;
  // table_of(g) is KV group g's block table (g < num_groups). Returns the sequence's first
  // row: its tokens are the rows AddRows appends next.
  template <typename TableOf>
  int64_t AddSeq(int64_t num_rows, int64_t context_len, int64_t num_groups, TableOf table_of) {
    const int64_t row0 = static_cast<int64_t>(token_ids.size());
    seqs.push_back(ops::AttnSeq{row0, num_rows, context_len, table_of(0)});
    if (num_groups > 1) {
      for (int64_t g = 0; g < num_groups; ++g) group_block_tables.push_back(table_of(g));
    }
    return row0;
  }
  // Appends rows: tokens[i] at position first_pos + i.
  void AddRows(std::span<const int32_t> tokens, int64_t first_pos) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      token_ids.push_back(tokens[i]);
      positions.push_back(static_cast<int32_t>(first_pos + static_cast<int64_t>(i)));
    }
  }
};

}  // namespace inferd
