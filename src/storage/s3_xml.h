// The little XML the S3 API needs: pulling the text of simple, non-nested-by-the-same-name
// elements out of a response (ListObjectsV2, errors, multipart), and escaping text for request
// bodies. Not a general XML parser: no DTDs, CDATA or namespaces-prefixed tags.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quire::storage::xml {

// The raw inner content of every <tag>...</tag> (or <tag attr="...">...</tag>; <tag/> gives "")
// in document order. Elements of the same name must not nest.
std::vector<std::string_view> elements(std::string_view doc, std::string_view tag);
// The first such element's content, unescaped; nullopt when there is none.
std::optional<std::string> first_text(std::string_view doc, std::string_view tag);

// &amp; &lt; &gt; &quot; &apos; and numeric references (&#NN; &#xHH;) to UTF-8.
std::string unescape(std::string_view text);
// The reverse, for text and attribute values.
std::string escape(std::string_view text);

}  // namespace quire::storage::xml
