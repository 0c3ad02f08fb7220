"""Runs the model for one scheduler step: builds the forward context, then calls the model.

Only the input preparation is shown here (the model and the KV-cache allocation are elsewhere in a real
engine): prepare_prefill recomputes whole prompts, prepare_decode writes one token per sequence through
(block, offset) slots, and graph decode pads the batch to max_num_seqs with a reserved dummy block.
"""

from dataclasses import dataclass

import torch

from nanoport.utils.context import set_context


@dataclass
class Config:
    max_num_seqs: int = 256
    max_model_len: int = 4096
    kvcache_block_size: int = 128
    enforce_eager: bool = False
    num_kvcache_blocks: int = -1


class ModelRunner:

    def __init__(self, config: Config):
        self.config = config
        self.block_size = config.kvcache_block_size
        self.enforce_eager = config.enforce_eager
        self.model = self.load_model(config)  # a real engine loads weights and allocates the KV cache here

    def load_model(self, config):
        raise NotImplementedError("nanoport ships no model: this fixture only prepares inputs")

    def prepare_block_tables(self, seqs, width=None):
        width = width or max(len(seq.block_table) for seq in seqs)
        rows = [seq.block_table + [-1] * (width - len(seq.block_table)) for seq in seqs]
        return torch.tensor(rows, dtype=torch.int32, device="npu")

    def prepare_prefill(self, seqs):
        input_ids, positions, cu_seqlens, slot_mapping = [], [], [0], []
        max_len = 0
        for seq in seqs:
            n = len(seq)
            input_ids.extend(seq.token_ids)
            positions.extend(range(n))
            cu_seqlens.append(cu_seqlens[-1] + n)
            max_len = max(max_len, n)
            for i, block in enumerate(seq.block_table):
                start = block * self.block_size
                end = start + (seq.last_block_num_tokens if i == seq.num_blocks - 1 else self.block_size)
                slot_mapping.extend(range(start, end))
        cu = torch.tensor(cu_seqlens, dtype=torch.int32, device="npu")
        set_context(True, cu, cu.clone(), max_len, max_len, torch.tensor(slot_mapping, dtype=torch.int32, device="npu"),
                    None, self.prepare_block_tables(seqs), block_size=self.block_size)
        return (torch.tensor(input_ids, dtype=torch.int64, device="npu"),
                torch.tensor(positions, dtype=torch.int64, device="npu"))

    def prepare_decode(self, seqs):
        input_ids = [seq.token_ids[-1] for seq in seqs]
        positions = [len(seq) - 1 for seq in seqs]
        context_lens = [len(seq) for seq in seqs]
        slots = [[seq.block_table[-1], seq.last_block_num_tokens - 1] for seq in seqs]
        if self.enforce_eager:
            set_context(False, slot_mapping=torch.tensor(slots, dtype=torch.int32, device="npu"),
                        context_lens=torch.tensor(context_lens, dtype=torch.int32, device="npu"),
                        block_tables=self.prepare_block_tables(seqs), is_enforce_eager=True, real_bs=len(seqs),
                        block_size=self.block_size)
            return input_ids, positions
        return self.prepare_decode_padding(seqs, input_ids, positions, context_lens, slots)

    def prepare_decode_padding(self, seqs, input_ids, positions, context_lens, slots):
        pad = self.config.max_num_seqs - len(seqs)
        dummy_block = self.config.num_kvcache_blocks - 1  # kept out of the block manager's pool
        width = -(-self.config.max_model_len // self.block_size)
        tables = torch.full((self.config.max_num_seqs, width), -1, dtype=torch.int32, device="npu")
        tables[:len(seqs)] = self.prepare_block_tables(seqs, width)
        set_context(False, slot_mapping=torch.tensor(slots + [[dummy_block, 0]] * pad, dtype=torch.int32, device="npu"),
                    context_lens=torch.tensor(context_lens + [0] * pad, dtype=torch.int32, device="npu"),
                    block_tables=tables, is_enforce_eager=False, real_bs=len(seqs), block_size=self.block_size)
        return input_ids + [0] * pad, positions + [0] * pad
