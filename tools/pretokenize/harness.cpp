// Fixture generator for hearth's pre-tokenizer tests (not part of the build).
//
// Links llama.cpp's own src/unicode.cpp + src/unicode-data.cpp and prints, for every
// pre-tokenizer in pre_types.inc (written by gen_fixture.py from llama-vocab.cpp) and
// every text of the corpus, the byte lengths of the words unicode_regex_split returns.
// It also prints llama.cpp's category/whitespace flags for every codepoint, run-length
// encoded.
//
// Input (stdin): texts separated by '\0'. Output (stdout):
//   F <first codepoint> <flags>          one line per run of equal flags
//   P <pre type>                          then one line of lengths per text
#include "unicode.h"

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

struct pre_type_regexes {
    const char * name;
    std::vector<std::string> regex_exprs;
};

static const std::vector<pre_type_regexes> k_pre_types = {
#include "pre_types.inc"
};

int main() {
    const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::vector<std::string> texts;
    size_t start = 0;
    while (start < input.size()) {
        size_t end = input.find('\0', start);
        if (end == std::string::npos) {
            end = input.size();
        }
        texts.push_back(input.substr(start, end - start));
        start = end + 1;
    }

    const uint16_t mask = unicode_cpt_flags::MASK_CATEGORIES | unicode_cpt_flags::WHITESPACE;
    int prev = -1;
    for (uint32_t cpt = 0; cpt < 0x110000; ++cpt) {
        const int flags = unicode_cpt_flags_from_cpt(cpt).as_uint() & mask;
        if (flags != prev) {
            printf("F %u %d\n", cpt, flags);
            prev = flags;
        }
    }

    for (const auto & pre : k_pre_types) {
        printf("P %s\n", pre.name);
        for (const auto & text : texts) {
            const auto words = unicode_regex_split(text, pre.regex_exprs, /*byte_encode=*/false);
            std::string joined;
            for (size_t i = 0; i < words.size(); ++i) {
                printf(i ? " %zu" : "%zu", words[i].size());
                joined += words[i];
            }
            printf("\n");
            if (joined != text) {
                fprintf(stderr, "%s: words do not concatenate to the text\n", pre.name);
                return 1;
            }
        }
    }
    return 0;
}
