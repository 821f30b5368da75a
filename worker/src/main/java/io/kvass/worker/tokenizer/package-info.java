/**
 * Tokenizers (Hugging Face {@code tokenizer.json} and llama2.c {@code tok*.bin}), streaming
 * detokenization and chat templates. Entry points: {@link io.kvass.worker.tokenizer.Tokenizer#load},
 * {@link io.kvass.worker.tokenizer.IncrementalDetokenizer}, {@link io.kvass.worker.tokenizer.ChatTemplate#load}.
 */
package io.kvass.worker.tokenizer;
