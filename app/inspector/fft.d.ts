// fft.js ships no types: the part of its API the spectrogram uses.
declare module "fft.js" {
  export default class FFT {
    constructor(size: number);
    readonly size: number;
    createComplexArray(): number[];
    /** Fills the left half (bins 0..size/2) of `out` (interleaved re, im) with the transform of real `input`. */
    realTransform(out: number[] | Float64Array, input: ArrayLike<number>): void;
    completeSpectrum(out: number[] | Float64Array): void;
  }
}
