// dump_attention MODEL TOKENS OUTDIR: llama.cpp's first-layer attention inputs
// and output, for hearth's attention fixtures (see gen.py next to this file).
//
// Two contexts, both with flash attention off, 2 threads and no extra buffer
// types (the settings of tools/logits-fixtures):
//   OUTDIR/batch/:  the whole prompt as one batch (one ubatch);
//   OUTDIR/prefix/: the prompt without its last token as one batch, then
//   OUTDIR/decode/: that last token alone (a single-query decode step).
// Each directory gets Qcur-0, Kcur-0, Vcur-0 and kqv_out-0 as little-endian
// f32 in ggml's element order (the last tensor of that name in the graph:
// the roped Q and K).
#include "llama.h"
#include "ggml.h"
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level, const char *, void *) {}

static std::string g_dir;

static bool cb(struct ggml_tensor * t, bool ask, void *) {
    static const std::set<std::string> wanted = {"Qcur-0", "Kcur-0", "Vcur-0", "kqv_out-0"};
    if (!wanted.count(t->name)) return !ask ? true : false;
    if (ask) return true;
    if (t->type != GGML_TYPE_F32) { fprintf(stderr, "%s is not f32\n", t->name); exit(1); }
    std::string path = g_dir + "/" + t->name + ".f32";
    FILE * f = fopen(path.c_str(), "wb");
    if (!f) { perror(path.c_str()); exit(1); }
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
    for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
    for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
    for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
        const char * p = (const char *) t->data + i3*t->nb[3] + i2*t->nb[2] + i1*t->nb[1] + i0*t->nb[0];
        fwrite(p, 4, 1, f);
    }
    fclose(f);
    return true;
}

static llama_context * new_context(llama_model * model, int n_ctx, int n_batch) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch; cp.n_ubatch = n_batch;
    cp.n_threads = 2; cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = cb; cp.cb_eval_user_data = nullptr;
    return llama_init_from_model(model, cp);
}

static void decode(llama_context * ctx, const std::vector<llama_token> & toks, int pos0, const std::string & dir) {
    g_dir = dir;
    llama_batch batch = llama_batch_init((int) toks.size(), 0, 1);
    for (size_t i = 0; i < toks.size(); i++) {
        batch.token[i] = toks[i]; batch.pos[i] = pos0 + (int) i;
        batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0; batch.logits[i] = 1;
    }
    batch.n_tokens = (int) toks.size();
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); exit(1); }
    llama_batch_free(batch);
}

int main(int argc, char ** argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MODEL TOKENS OUTDIR\n", argv[0]); return 1; }
    std::vector<llama_token> prompt;
    { std::stringstream ss(argv[2]); std::string item; while (std::getline(ss, item, ',')) prompt.push_back(std::atoi(item.c_str())); }
    const std::string out = argv[3];
    const int n = (int) prompt.size();
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }

    llama_context * ctx = new_context(model, 256, n);
    decode(ctx, prompt, 0, out + "/batch");
    llama_free(ctx);

    ctx = new_context(model, 256, n);
    decode(ctx, std::vector<llama_token>(prompt.begin(), prompt.end() - 1), 0, out + "/prefix");
    decode(ctx, {prompt.back()}, n - 1, out + "/decode");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
