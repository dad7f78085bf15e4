/*
 * Tokenizer oracle: runs llama.cpp's own llama_tokenize / llama_detokenize on
 * length-prefixed texts, for the cases llama-tokenize cannot reach
 * (parse_special = true; detokenization). Built and run by gen_fixtures.py.
 *
 * With --specials instead, it prints the vocabulary's special ids and flags:
 *   V <bos> <eos> <eot> <sep> <pad> <nl> <add_bos> <add_eos> <add_sep>   (-1 = none)
 *   G <every id llama_vocab_is_eog accepts>
 *
 * stdin:  repeated [u32 little-endian byte length][bytes]
 * stdout: per text, four lines:
 *   R <ids>   add_special = false, parse_special = false
 *   S <ids>   add_special = true,  parse_special = true
 *   D <hex>   llama_detokenize(R, remove_special = false, unparse_special = false)
 *   P <hex>   llama_detokenize(S, remove_special = true,  unparse_special = true)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char * text, void * user) {
    (void) level; (void) text; (void) user;
}

static int32_t * tokenize(const struct llama_vocab * vocab, const char * text, int32_t len,
                          bool add_special, bool parse_special, int32_t * n_out) {
    int32_t cap = len + 8;
    int32_t * ids = malloc(sizeof(int32_t) * cap);
    int32_t n = llama_tokenize(vocab, text, len, ids, cap, add_special, parse_special);
    if (n < 0) {
        cap = -n;
        ids = realloc(ids, sizeof(int32_t) * cap);
        n = llama_tokenize(vocab, text, len, ids, cap, add_special, parse_special);
    }
    *n_out = n;
    return ids;
}

static void print_ids(char tag, const int32_t * ids, int32_t n) {
    printf("%c", tag);
    for (int32_t i = 0; i < n; i++) {
        printf(" %d", ids[i]);
    }
    printf("\n");
}

static void print_detok(char tag, const struct llama_vocab * vocab, const int32_t * ids, int32_t n,
                        bool remove_special, bool unparse_special) {
    int32_t cap = 16 + n * 64;
    char * buf = malloc(cap);
    int32_t len = llama_detokenize(vocab, ids, n, buf, cap, remove_special, unparse_special);
    if (len < 0) {
        cap = -len;
        buf = realloc(buf, cap);
        len = llama_detokenize(vocab, ids, n, buf, cap, remove_special, unparse_special);
    }
    printf("%c ", tag);
    for (int32_t i = 0; i < len; i++) {
        printf("%02x", (unsigned char) buf[i]);
    }
    printf("\n");
    free(buf);
}

int main(int argc, char ** argv) {
    const bool specials = argc == 3 && strcmp(argv[2], "--specials") == 0;
    if (argc != 2 && !specials) {
        fprintf(stderr, "usage: %s MODEL.gguf [--specials] < framed-texts\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    struct llama_model * model = llama_model_load_from_file(argv[1], params);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    if (specials) {
        printf("V %d %d %d %d %d %d %d %d %d\n", llama_vocab_bos(vocab), llama_vocab_eos(vocab),
               llama_vocab_eot(vocab), llama_vocab_sep(vocab), llama_vocab_pad(vocab), llama_vocab_nl(vocab),
               llama_vocab_get_add_bos(vocab), llama_vocab_get_add_eos(vocab), llama_vocab_get_add_sep(vocab));
        printf("G");
        for (int32_t id = 0; id < llama_vocab_n_tokens(vocab); id++) {
            if (llama_vocab_is_eog(vocab, id)) {
                printf(" %d", id);
            }
        }
        printf("\n");
        llama_model_free(model);
        return 0;
    }

    uint32_t len;
    while (fread(&len, sizeof(len), 1, stdin) == 1) {
        char * text = malloc(len + 1);
        if (len > 0 && fread(text, 1, len, stdin) != len) {
            fprintf(stderr, "truncated input\n");
            return 1;
        }
        int32_t n_raw, n_special;
        int32_t * raw = tokenize(vocab, text, (int32_t) len, false, false, &n_raw);
        int32_t * special = tokenize(vocab, text, (int32_t) len, true, true, &n_special);
        print_ids('R', raw, n_raw);
        print_ids('S', special, n_special);
        print_detok('D', vocab, raw, n_raw, false, false);
        print_detok('P', vocab, special, n_special, true, true);
        free(raw);
        free(special);
        free(text);
    }
    fflush(stdout);
    llama_model_free(model);
    return 0;
}
