// The per-step metadata a GPU backend uploads for one flat batch (host-side, pure, unit
// tested without a GPU): row -> sequence, KV slots, block tables, and the split of rows
// between the decode (split-K) and prefill (tiled) attention kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "inferd/status.h"
#include "ops/batch.h"

namespace inferd {

struct DeviceBatchPlan {
  int64_t num_rows = 0;        // rows launched: the batch's rows plus padding
  int64_t num_real_rows = 0;   // the batch's rows
  int64_t num_seqs = 0;
  int64_t max_blocks_per_seq = 0;
  std::vector<int32_t> token_ids;     // [num_rows]; padding rows: 0
  std::vector<int32_t> positions;     // [num_rows]; padding rows: 0
  std::vector<int32_t> row_seq;       // [num_rows]; padding rows: -1
  std::vector<int64_t> slot_mapping;  // [num_rows] block * block_size + offset; padding: -1
  std::vector<int32_t> decode_rows;   // rows of one-token sequences, then padding rows
  std::vector<int32_t> prefill_tiles; // (first row, rows) pairs of multi-token sequences
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq], unused entries 0
  std::vector<int32_t> logits_rows;   // batch.logits_rows
  int64_t max_decode_context = 0;     // max positions[t] + 1 over decode rows
  bool decode_only = false;           // every real row is a decode row
};

// pad_rows_to: launch this many rows (>= the batch's rows; 0: no padding), padding rows
// being decode rows of no sequence. Errors: a sequence's rows out of the batch, a
// context longer than max_blocks_per_seq blocks, positions that are not consecutive
// within a sequence's rows.
Status PlanDeviceBatch(const ForwardBatch& batch, int64_t block_size, int64_t max_blocks_per_seq,
                       int64_t pad_rows_to, int64_t tile_rows, DeviceBatchPlan* plan);

}  // namespace inferd
