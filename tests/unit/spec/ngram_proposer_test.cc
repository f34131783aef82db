// Prompt-lookup proposals (spec/ngram_proposer.h): the longest matching suffix wins, its
// latest earlier occurrence is used, proposals stop at k tokens or the end of the sequence,
// and the configured bounds are respected.
#include <gtest/gtest.h>

#include <vector>

#include "spec/ngram_proposer.h"

namespace inferd::spec {
namespace {

std::vector<int32_t> Propose(const std::vector<int32_t>& tokens, int min_n, int max_n, int k) {
  return ProposeNgram(tokens, NgramConfig{min_n, max_n, k});
}

TEST(NgramProposer, ProposesWhatFollowedTheSuffixBefore) {
  EXPECT_EQ(Propose({1, 2, 3, 4, 1, 2, 3}, 1, 3, 3), (std::vector<int32_t>{4, 1, 2}));
  EXPECT_EQ(Propose({1, 2, 3, 4, 1, 2, 3}, 1, 3, 8), (std::vector<int32_t>{4, 1, 2, 3}));  // up to the end
  EXPECT_EQ(Propose({7, 7, 7}, 1, 2, 4), (std::vector<int32_t>{7}));                        // overlapping match
}

TEST(NgramProposer, TheLongestSuffixWinsThenTheLatestOccurrence) {
  // [3, 2] occurs at 0 (followed by 7); the 1-gram [2] last occurred at 4 (followed by 9).
  EXPECT_EQ(Propose({3, 2, 7, 1, 2, 9, 3, 2}, 1, 2, 2), (std::vector<int32_t>{7, 1}));
  EXPECT_EQ(Propose({3, 2, 7, 1, 2, 9, 3, 2}, 1, 1, 2), (std::vector<int32_t>{9, 3}));
  // [5, 6] occurs at 0 and 3: the latest (followed by 8) is used.
  EXPECT_EQ(Propose({5, 6, 7, 5, 6, 8, 5, 6}, 2, 2, 2), (std::vector<int32_t>{8, 5}));
}

TEST(NgramProposer, NothingWithoutAMatchWithinTheBounds) {
  EXPECT_TRUE(Propose({1, 2, 3, 9, 3}, 2, 3, 4).empty());  // [9, 3] never occurred before
  EXPECT_EQ(Propose({1, 2, 3, 9, 3}, 1, 3, 4), (std::vector<int32_t>{9, 3}));
  EXPECT_TRUE(Propose({1, 2, 1}, 1, 2, 0).empty());  // k = 0
  EXPECT_TRUE(Propose({4}, 1, 2, 3).empty());
  EXPECT_TRUE(Propose({}, 1, 2, 3).empty());
}

}  // namespace
}  // namespace inferd::spec
