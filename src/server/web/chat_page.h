// The chat page served at GET / (src/server/web/chat.html, compiled into the binary by
// inferd_embed_file: no CDN, works offline). See docs/chat-page.md.
#pragma once

#include <string_view>

namespace inferd::server::web {

std::string_view ChatPageHtml();

}  // namespace inferd::server::web
