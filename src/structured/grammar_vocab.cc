#include "structured/grammar_vocab.h"

#include <string>
#include <vector>

namespace inferd::structured {

xgrammar::TokenizerInfo MakeGrammarVocab(const Tokenizer& tok) {
  const int32_t n = tok.vocab_size();
  std::vector<std::string> pieces(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    if (!tok.IsSpecial(id)) pieces[id] = tok.TokenToPiece(id, /*skip_special=*/false);
  }
  std::vector<int32_t> stops(tok.eog_ids().begin(), tok.eog_ids().end());
  return xgrammar::TokenizerInfo(pieces, xgrammar::VocabType::RAW, n, stops, /*add_prefix_space=*/false);
}

}  // namespace inferd::structured
