/**
 * A text encoder's final-layer token states for one text: `count` rows of `dimension` values,
 * [CLS] first and [SEP] last, row-major. Padding is not stored: the attention mask is "the first
 * `count` rows". Shared by the encoder (embedding) and the model that pools them (training/model).
 */
export interface TokenStates {
  readonly count: number;
  readonly data: Float32Array;
}
