#include "backend/batch_plan.h"

#include <fmt/format.h>

#include <algorithm>

namespace inferd {

Status PlanDeviceBatch(const ForwardBatch& batch, int64_t block_size, int64_t max_blocks_per_seq,
                       int64_t pad_rows_to, int64_t tile_rows, DeviceBatchPlan* plan) {
  const int64_t T = static_cast<int64_t>(batch.token_ids.size());
  if (static_cast<int64_t>(batch.positions.size()) != T) return Internal("batch plan: positions size mismatch");
  if (block_size <= 0 || tile_rows <= 0 || max_blocks_per_seq <= 0) return Internal("batch plan: bad sizes");
  const int64_t rows = std::max(T, pad_rows_to);
  DeviceBatchPlan& p = *plan;
  p.num_rows = rows;
  p.num_real_rows = T;
  p.num_seqs = static_cast<int64_t>(batch.seqs.size());
  p.max_blocks_per_seq = max_blocks_per_seq;
  p.token_ids.assign(rows, 0);
  p.positions.assign(rows, 0);
  p.row_seq.assign(rows, -1);
  p.slot_mapping.assign(rows, -1);
  p.decode_rows.clear();
  p.prefill_tiles.clear();
  p.block_tables.assign(static_cast<size_t>(p.num_seqs * max_blocks_per_seq), 0);
  p.logits_rows.assign(batch.logits_rows.begin(), batch.logits_rows.end());
  p.max_decode_context = 0;
  std::copy(batch.token_ids.begin(), batch.token_ids.end(), p.token_ids.begin());
  std::vector<bool> covered(T, false);
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const ops::AttnSeq& q = batch.seqs[s];
    if (q.num_tokens <= 0 || q.token_begin < 0 || q.token_begin + q.num_tokens > T) {
      return Internal(fmt::format("batch plan: sequence {} rows [{}, {}) out of the batch of {}", s, q.token_begin,
                                  q.token_begin + q.num_tokens, T));
    }
    const int64_t blocks = (q.context_len + block_size - 1) / block_size;
    if (blocks > max_blocks_per_seq) {
      return InvalidArgument(fmt::format("sequence context of {} tokens needs {} KV blocks, more than the {} a "
                                         "block table holds",
                                         q.context_len, blocks, max_blocks_per_seq));
    }
    std::copy(q.block_table, q.block_table + blocks, p.block_tables.begin() + s * max_blocks_per_seq);
    for (int64_t i = 0; i < q.num_tokens; ++i) {
      const int64_t t = q.token_begin + i;
      const int32_t pos = batch.positions[t];
      if (covered[t]) return Internal(fmt::format("batch plan: row {} is in two sequences", t));
      if (pos < 0 || pos >= q.context_len || (i > 0 && pos != batch.positions[t - 1] + 1)) {
        return Internal(fmt::format("batch plan: row {} has position {} (context {})", t, pos, q.context_len));
      }
      covered[t] = true;
      p.positions[t] = pos;
      p.row_seq[t] = static_cast<int32_t>(s);
      p.slot_mapping[t] = static_cast<int64_t>(q.block_table[pos / block_size]) * block_size + pos % block_size;
    }
    if (q.num_tokens == 1) {
      p.decode_rows.push_back(static_cast<int32_t>(q.token_begin));
      p.max_decode_context = std::max<int64_t>(p.max_decode_context, batch.positions[q.token_begin] + 1);
    } else {
      for (int64_t b = 0; b < q.num_tokens; b += tile_rows) {
        p.prefill_tiles.push_back(static_cast<int32_t>(q.token_begin + b));
        p.prefill_tiles.push_back(static_cast<int32_t>(std::min(tile_rows, q.num_tokens - b)));
      }
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    if (!covered[t]) return Internal(fmt::format("batch plan: row {} belongs to no sequence", t));
  }
  p.decode_only = p.prefill_tiles.empty();
  for (int64_t t = T; t < rows; ++t) p.decode_rows.push_back(static_cast<int32_t>(t));
  for (int64_t r : batch.logits_rows) {
    if (r < 0 || r >= T) return Internal("batch plan: logits row out of range");
  }
  return Status::OK();
}

}  // namespace inferd
