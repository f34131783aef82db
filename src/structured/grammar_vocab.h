// XGrammar's view of an inferd tokenizer (docs/structured-outputs.md): the bytes every token
// contributes to the text, so that grammars over text become masks over token ids.
#pragma once

#include <xgrammar/tokenizer_info.h>

#include "tokenizer/tokenizer.h"

namespace inferd::structured {

// Token i decodes to TokenToPiece(i) (raw bytes: byte-level BPE and SentencePiece byte
// fallback already undone, so XGrammar gets VocabType::RAW). Special (control and added)
// tokens get the empty string, which XGrammar never allows inside a grammar; the tokenizer's
// end-of-generation ids are the stop tokens a completed grammar allows.
xgrammar::TokenizerInfo MakeGrammarVocab(const Tokenizer& tok);

}  // namespace inferd::structured
