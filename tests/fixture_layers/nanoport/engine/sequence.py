"""A request as the scheduler tracks it."""

from itertools import count


class Sequence:
    block_size = 128
    counter = count()

    def __init__(self, token_ids: list[int]):
        self.seq_id = next(Sequence.counter)
        self.token_ids = list(token_ids)
        self.num_tokens = len(self.token_ids)
        self.num_cached_tokens = 0
        self.block_table: list[int] = []

    def __len__(self):
        return self.num_tokens

    @property
    def num_blocks(self):
        return (self.num_tokens + self.block_size - 1) // self.block_size

    @property
    def last_block_num_tokens(self):
        return self.num_tokens - (self.num_blocks - 1) * self.block_size

    def append_token(self, token_id: int):
        self.token_ids.append(token_id)
        self.num_tokens += 1
