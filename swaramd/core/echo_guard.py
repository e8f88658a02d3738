"""The guard after the linear echo canceller: what of its output may leave for the uplink.

A linear canceller (`core.echo`) leaves a residual: all of the echo while it
has not learnt the room, and afterwards what its filter cannot model (a tail
longer than the filter, a clipping microphone, a filter still settling). The
service's voice detector would take a loud residual for the user and stop the
reply. The guard sees, for every kernel frame, the energy of the mic and of
the canceller's output, plain and weighted towards the voice's band (the
caller's pre-emphasis), and sets the frame's gain:

    mic and output energies, mic clipped, speaker playing --frame_gain--> gain
    output frame, gain ----------------------------------------apply---> uplink frame

Rules this module keeps:

- `LEARNING`: until the canceller has converged (ERLE at least
  `CONVERGED_DB` for `CONVERGED_HOLD_S` while the speaker plays, or its
  output down at the room's noise), the mic is held (gain 0) while the
  speaker plays. The canceller lives as long as the daemon: it learns at
  the start, and again only when the echo changes or moves (below).
  A room where the canceller does worse is trusted at `PATIENT_DB` after
  `PATIENCE_S` of playback, so the user can always talk over a reply.
- `SETTLING`: a filter that has played less than `FIRST_S` since it met the
  echo (since the daemon started, or since an echo appeared where the mic
  heard none) leaves bursts of residual on sounds it has not met yet (a loud
  word's reverberant end), 6-25 dB over the residual held, coherent with
  the estimate and following it no more than a voice does: no rule on a
  frame tells them from a user talking over the reply, and in replies of
  other voices and words they passed as the user 6-21 s of playback after
  the start (all but one under 18 s). So once it has converged on an echo,
  the mic stays held until the filter has played `FIRST_S`; the button
  still interrupts meanwhile. (A mic that does not hear the speaker,
  `hears_echo`, has no residual to burst and does not settle.) Every frame
  is judged meanwhile as once converged, and held: an echo that changes
  while the filter settles makes the guard learn again, as below.
  A filter that started again from zero (a clock drift found had
  moved the echo under it: `relearn(restarted=True)`) converges on the few
  replies it has heard since and the seconds replayed into it, and meets
  sounds it has not learnt for a while after: their residual came out loud
  enough, and unlike the estimate enough, to pass as the user 15-30 s after
  the restart. Once such a filter has converged, the mic stays held for
  `SETTLE_S` of playback in this state. Then the guard converges (and the
  filter is young from there).
- `CONVERGED`: a frame's own ERLE (mic over output energy, voice-weighted)
  says what it holds. Echo alone comes out at about the canceller's usual
  ERLE (`floor`, tracked on such frames); the user's voice comes out far
  louder than that, because the canceller does not remove it. The weighting
  keeps the low band, where a canceller leaves most of its residual and a
  voice has little to tell, from deciding. A quiet stretch of echo (a word's
  reverberant end, a pause) comes out with a low ERLE too: the residual
  there is what the filter's error left of the loud echo just before. So the
  guard also holds the residual: the output energy of the frames it judged
  echo (and of every frame while learning), never under the room at rest,
  and falling `RESIDUAL_DECAY_DB_S` over the frames judged by their ERLE
  (a run of frames it holds back leaves it where it is: a residual that
  builds up over several frames stays held back). A frame at least `NEAR_END_MARGIN_DB`
  under the usual ERLE and at least `RESIDUAL_MARGIN_DB` over the held
  residual passes whole: that is the user, double talk included, unless its
  output follows the canceller's echo estimate or its negative (their
  voice-weighted correlation, from the caller, at least `FOLLOWS_MAX` either
  way): an echo louder than the filter expects (the speaker or the mic
  turned up, a reverberant stretch the filter under-models) leaves an output
  shaped like the estimate, and an echo quieter than it expects or moved
  leaves the estimate subtracted where it is not; the user's voice is
  neither. A burst of residual follows the estimate at first and then less:
  a frame right after `BURST_FRAMES` or more that followed it, and within
  `BURST_MARGIN_DB` of the residual held, is that burst, not the user (a
  voice stands far above the residual). A filter still young (for
  `YOUNG_S` of playback after the guard converged, at first or again after
  a change) leaves bursts of residual on sounds it has not met yet, loud
  enough to pass by their energies, and following the estimate no more
  than a voice does; but the estimate, only scaled wrong per frequency,
  still explains the mic (their coherence, from the caller, at least
  `COHERENT_MIN`), where the user's voice is no function of it and lowers
  the coherence where it speaks. There such a frame is echo unless its
  output stands `COHERENT_MARGIN_DB` over the residual held. A user much
  quieter than the echo leaves the mic explained too, and would lose
  words to the rule for good: a grown filter does without it. Just after
  the speaker falls silent (`tail`), the mic holds only the echo's dying
  tail, which a filter models worst: there the user must also be louder than
  the mic's peak while the speaker played, falling `TAIL_DECAY_DB_S`. Any
  other frame is echo: it is attenuated until its ERLE reaches `TARGET_DB`
  and it is no louder than the room at rest (plain energies here: the
  uplink carries every band). A frame whose mic clipped is never taken for
  the user (clipping is an echo the linear filter cannot model), and no
  frame leaves louder than the mic heard it (a filter gone wrong adds echo).
- An echo that changes under a converged canceller (it moves, or grows
  louder) makes Speex re-adapt for seconds, and meanwhile its output looks
  like the user by its energies. At first the output still follows the
  estimate closely (`CHANGED_FOLLOWS`), on most of those frames; the user's
  voice almost never does. When more than `CHANGED_SHARE` of the frames that
  look like the user by their energies do (a running share over about
  `CHANGED_FRAMES` of them; a low share, because in a room learnt long ago
  many of those frames follow it less closely, and the first that follows
  it under `FOLLOWS_MAX` would pass), the echo has changed: the guard learns again,
  holding the mic while the speaker plays until the canceller has
  re-converged.
- The room's rest level (the mic while the speaker has been silent longer
  than the echo lasts) follows a quieter room at once and a louder one by
  at most `REST_RISE_DB_S`: a user talking while nothing plays is not the
  room. A frame under `SILENT_DBFS` (digital silence: a device's first
  periods, a muted capture) says nothing of the room and is not counted:
  a level learnt from it would rise from nothing, never.
- ERLE (plain mic energy over plain output energy) is measured only while
  the speaker plays, over about a second; it is what status shows and what
  tells the canceller that the echo has moved. A mic no louder while the
  speaker plays than while it rests does not hear it (`hears_echo`): there
  is no echo to align to, and once converged the canceller may rest while
  that frame too is at the mic's rest level (`unheard`); it rests on a
  frame of digital silence whatever the state (no echo is in it).
- The gain moves across a frame in a straight line from the previous
  frame's gain: no clicks. Nothing is allocated per frame but the frame
  that leaves.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.int16]

CONVERGED_DB = 18.0        # ERLE at which the guard trusts the canceller
CONVERGED_HOLD_S = 0.5     # ... for this long while the speaker plays
PATIENCE_S = 20.0          # after this much playback still learning, trust it ...
PATIENT_DB = 12.0          # ... at this ERLE
TARGET_DB = 30.0           # echo frames leave with at least this ERLE
CLIPPED_TARGET_DB = 38.0   # ... and frames whose mic clipped with this
NEAR_END_MARGIN_DB = 6.0   # a frame this far under the usual ERLE is the user ...
RESIDUAL_MARGIN_DB = 6.0   # ... if this far over the residual echo held from echo frames,
RESIDUAL_DECAY_DB_S = 20.0  # which falls this fast,
FOLLOWS_MAX = 0.2          # and if its output follows the echo estimate (or its negative)
                           # less than this
BURST_FRAMES = 2           # ... nor continues this many frames that followed it in a row
BURST_MARGIN_DB = 12.0     # ... within this much of the residual held
COHERENT_MIN = 0.98        # a frame whose mic the echo estimate explains this well
COHERENT_MARGIN_DB = 20.0  # ... is echo, unless its output is this far over the residual,
YOUNG_S = 20.0             # ... while the filter is young: this much playback since the
                           # guard converged
FIRST_S = 18.0             # a filter learning an echo new to it (at the daemon's start):
                           # the mic held until it has played this much since
SETTLE_S = 10.0            # a filter that started again from zero: the mic held for this
                           # much playback settling, once it has converged
CHANGED_FOLLOWS = 0.3      # frames that look like the user but follow the estimate this closely
CHANGED_SHARE = 0.3        # ... in this share of such frames: the echo has changed
CHANGED_FRAMES = 15        # ... a share running over about this many of them
REST_RISE_DB_S = 1.0       # the room's rest level rises at most this fast
SILENT_DBFS = -96.0        # a mic frame under this is digital silence, not the room
TAIL_DECAY_DB_S = 60.0     # after the speaker falls silent, its echo dies no faster
FLOOR_S = 0.5              # how fast the usual ERLE follows echo frames
FLOOR_LEAK_DB_S = 1.0      # ... and sinks while frames look like the user
ERLE_WINDOW_S = 1.0
NO_ECHO_DB = 3.0           # the mic no louder than this over its rest while playing: no echo
CLIP = 32000               # a mic sample this large was clipped on the way in
_NO_ECHO = 10 ** (NO_ECHO_DB / 10)
_RESIDUAL_MARGIN = 10 ** (RESIDUAL_MARGIN_DB / 10)
_BURST_MARGIN = 10 ** (BURST_MARGIN_DB / 10)
_COHERENT_MARGIN = 10 ** (COHERENT_MARGIN_DB / 10)
_SILENT = 10 ** (SILENT_DBFS / 10)


class Guard(StrEnum):
    """What the guard does with the mic while the speaker plays."""

    LEARNING = "learning"      # not converged: the mic is held
    SETTLING = "settling"      # a filter new or started again has converged: still held
    CONVERGED = "converged"    # the user's voice passes, the residual echo is attenuated


def level(dbfs: float) -> float:
    """Mean square energy (full scale 1.0) of a level in dBFS."""
    return float(10 ** (dbfs / 10))


class EchoGuard:
    """The gain of every frame the canceller puts out: see the module doc."""

    def __init__(self, rate: int, frame: int, *, guarded: bool = True) -> None:
        self.rate = rate
        self.frame = frame
        self.guarded = guarded           # False: every frame passes (to measure the canceller)
        self.state = Guard.LEARNING
        self.knows_echo = False          # converged on an echo cancelled, not on a quiet mic
        self.held = 0                    # samples held while learning
        self.clipped = 0                 # samples of clipped mic frames while playing
        self._erle_mic = 0.0
        self._erle_out = 0.0
        self._erle_n = 0                 # samples played, measured
        self._met_at = 0                 # `_erle_n` when the filter met the echo
        self._noise = -1.0               # mic energy while the speaker is silent
        self._noise_v = -1.0             # ... voice-weighted
        self._erle_mic_v = 0.0
        self._erle_out_v = 0.0
        self._good_run = 0               # samples converged in a row
        self._learnt = 0                 # samples played while learning
        self._floor_db = CONVERGED_DB    # the usual (voice-weighted) ERLE of echo frames
        self._residual = 0.0             # voice-weighted output energy of echo frames, held
        self._residual_fall = 10 ** (-RESIDUAL_DECAY_DB_S * frame / rate / 10)
        self._rest_rise = 10 ** (REST_RISE_DB_S * frame / rate / 10)
        self._echo_env = 0.0             # the mic's recent peak while the speaker plays
        self._tail_fall = 10 ** (-TAIL_DECAY_DB_S * frame / rate / 10)
        self._suppress = 1.0             # mean energy gain while playing, over ~1 s
        self._changed = 0.0              # running share of user-like frames that follow
        self._followed = 0               # frames in a row whose output followed the estimate
        self._restarted = False          # the filter started again from zero: settle
        self._played = 0                 # samples played since the guard converged (young
        # while under YOUNG_S), or settling since it learnt again (held under SETTLE_S)
        self._gain = 0.0
        self._ramp = (np.arange(frame, dtype=np.float32) + 1) / frame
        self._buf = np.zeros(frame, dtype=np.float32)

    # --- per frame -------------------------------------------------------------

    def rest(self, mic_e: float, mic_v: float | None = None) -> None:
        """The speaker has been silent longer than the echo lasts: the room's level
        (at once down, up by at most `REST_RISE_DB_S`), against which a converged
        output is measured; `mic_v` is the frame's voice-weighted energy (see
        `frame_gain`); a frame of digital silence is not the room."""
        if mic_e < _SILENT:
            return
        self._noise = self._follow_rest(self._noise, mic_e)
        self._noise_v = self._follow_rest(self._noise_v, mic_e if mic_v is None else mic_v)

    def _follow_rest(self, rest: float, mic_e: float) -> float:
        if rest < 0 or mic_e < rest:
            return mic_e
        return min(mic_e, rest * self._rest_rise)

    def frame_gain(self, mic_e: float, out_e: float, clipped: bool, playing: bool,
                   voice: tuple[float, float] | None = None, tail: bool = False,
                   follows: float = 0.0, hold: bool = False, coherent: float = 0.0) -> float:
        """The gain for an output frame, given its mic frame's energy and its own
        (mean squares, full scale 1.0), whether that mic frame clipped and whether
        the speaker plays (its echo may be in the mic). `voice` holds the same two
        energies weighted towards the voice's band (the user-or-echo judgement is
        made on them); without it, the plain energies serve. `tail`: the speaker
        has just fallen silent, and only its echo's tail may be in the mic.
        `follows`: the correlation of the frame's output with the canceller's echo
        estimate (voice-weighted). `hold`: once converged, hold the frame (counted as
        held) whatever it holds. `coherent`: how much of the mic the echo estimate
        explains (their coherence, 0 to 1, from the caller)."""
        if not playing:
            self._followed = 0
            return 1.0
        self._echo_env *= self._tail_fall
        if not tail:
            self._echo_env = max(self._echo_env, mic_e)
        mic_v, out_v = (mic_e, out_e) if voice is None else voice
        self._measure(mic_e, out_e, mic_v, out_v)
        if clipped:
            self.clipped += self.frame
        if self.state is Guard.SETTLING:
            self._played += self.frame
            if self._settled():
                self._converge(self._need())
        if not self.guarded:
            return 1.0
        if self.state is Guard.LEARNING:
            self.held += self.frame
            self._hold_residual(out_v)
            return 0.0
        settling = self.state is Guard.SETTLING
        if not settling:
            self._played += self.frame
        if hold and not settling:
            self.held += self.frame
            gain = 0.0
        else:
            # Settling, every frame is judged as once converged (an echo that changes
            # meanwhile makes the guard learn again), and held.
            gain = self._residual_gain(mic_e, out_e, clipped, mic_v, out_v, tail, follows,
                                       coherent)
            if self._changed > CHANGED_SHARE:
                self.relearn()              # the echo changed: hold from the next frame
            if settling:
                self.held += self.frame
                gain = 0.0
        self._followed = self._followed + 1 if abs(follows) >= FOLLOWS_MAX else 0
        self._suppress += (gain * gain - self._suppress) * self.frame / (self.rate * ERLE_WINDOW_S)
        return gain

    def apply(self, out: Samples, gain: float) -> Samples:
        """`out` with the gain moving from the last frame's to `gain` (a new array)."""
        g0, self._gain = self._gain, gain
        if g0 == gain == 1.0:
            return out.copy()
        if g0 == gain == 0.0:
            return np.zeros_like(out)
        buf = self._buf
        np.multiply(self._ramp, gain - g0, out=buf)
        buf += g0
        buf *= out
        return buf.astype(np.int16)

    def relearn(self, restarted: bool = False) -> None:
        """The echo moved or changed: hold again until the canceller has re-converged;
        `restarted`: its filter starts again from zero, and settles (held) after that."""
        if self.state is Guard.CONVERGED and not self.knows_echo:
            self._met_at = self._erle_n  # converged on no echo: this one is new to the filter
        self.state = Guard.LEARNING
        self._restarted = self._restarted or restarted
        self._good_run = self._learnt = self._followed = self._played = 0
        self._changed = 0.0

    # --- measures --------------------------------------------------------------

    def erle_db(self) -> float | None:
        """ERLE over about the last second of playback, or None before half a second."""
        if self._erle_n <= self.rate // 2 or self._erle_out <= 0:
            return None
        return 10 * math.log10(max(self._erle_mic, 1e-12) / self._erle_out)

    def hears_echo(self) -> bool:
        """Whether the mic hears the speaker: over the last second of playback it is at
        least `NO_ECHO_DB` louder than while the speaker rests (True until both are known).
        Headphones, or a speakerphone that cancels in hardware, leave it at its rest."""
        if self._noise <= 0 or self._erle_n <= self.rate // 2:
            return True
        return self._erle_mic >= self._noise * _NO_ECHO

    def unheard(self, mic_e: float) -> bool:
        """Whether the kernel may rest while the speaker plays: the guard has converged
        and the mic, over the last second of playback and in this frame (`mic_e`), is
        less than `NO_ECHO_DB` over its rest. An echo arriving (headphones unplugged)
        raises the very next frame over it, and the kernel runs again. A frame of
        digital silence (a muted capture) holds no echo at all: the kernel rests
        whatever the guard's state, and does not unlearn the room on it."""
        if mic_e < _SILENT:
            return True
        if self.state is not Guard.CONVERGED or self.hears_echo():
            return False
        return mic_e < self._noise * _NO_ECHO

    @property
    def grown(self) -> bool:
        """Whether the filter has played `YOUNG_S` since the guard converged: the frames'
        coherence is no longer needed."""
        return self.state is Guard.CONVERGED and self._played >= self.rate * YOUNG_S

    def erle_below(self, db: float) -> bool:
        """Whether ERLE over the last second is under `db`."""
        return self._erle_mic < self._erle_out * 10 ** (db / 10)

    def suppress_db(self) -> float:
        """The mean attenuation of the residual over about the last second of playback."""
        return max(0.0, -10 * math.log10(max(self._suppress, 1e-6)))

    def _measure(self, mic_e: float, out_e: float, mic_v: float, out_v: float) -> None:
        frame = self.frame
        a = frame / (self.rate * ERLE_WINDOW_S)
        self._erle_mic += (mic_e - self._erle_mic) * a
        self._erle_out += (out_e - self._erle_out) * a
        self._erle_mic_v += (mic_v - self._erle_mic_v) * a
        self._erle_out_v += (out_v - self._erle_out_v) * a
        self._erle_n += frame
        if self.state is not Guard.LEARNING:
            return
        quiet = max(self._noise * 4.0, level(-50.0))
        measured = self._erle_n > self.rate // 2
        self._learnt += frame
        erle_ok = measured and self._erle_out > 0 and not self.erle_below(self._need())
        residual_ok = measured and self._erle_out <= quiet
        self._good_run = self._good_run + frame if (erle_ok or residual_ok) else 0
        if self._good_run >= self.rate * CONVERGED_HOLD_S:
            self.knows_echo = erle_ok
            if self._settled():
                self._converge(self._need())
            else:
                self.state = Guard.SETTLING
                self._set_floor(self._need())

    def _need(self) -> float:
        """The ERLE at which the canceller counts as converged."""
        return CONVERGED_DB if self._learnt < self.rate * PATIENCE_S else PATIENT_DB

    def _settled(self) -> bool:
        """Whether a converged filter has settled: it has played `FIRST_S` since it met
        the echo (the daemon's start, or an echo appearing where there was none), and if
        it started again from zero, `SETTLE_S` while settling since. A mic that hears no
        echo (`hears_echo`) leaves no residual to burst: it needs no settling."""
        if self._restarted and self._played < self.rate * SETTLE_S:
            return False
        return not self.hears_echo() or self._erle_n - self._met_at >= self.rate * FIRST_S

    def _converge(self, need: float) -> None:
        """Trust the canceller from this frame on (`need`: the ERLE it converged at, the
        least the usual ERLE is taken to be); the filter is young from here."""
        self.state = Guard.CONVERGED
        self._played = 0
        self._restarted = False
        self._set_floor(need)

    def _set_floor(self, need: float) -> None:
        """Take the usual ERLE from the last second's (voice-weighted), `need` at least."""
        voice_erle = 10 * math.log10(max(self._erle_mic_v, 1e-12) /
                                     max(self._erle_out_v, 1e-13))
        self._floor_db = max(need, voice_erle)

    def _residual_gain(self, mic_e: float, out_e: float, clipped: bool, mic_v: float,
                       out_v: float, tail: bool, follows: float, coherent: float) -> float:
        if out_e <= 0.0:
            return 1.0
        e_db = 10 * math.log10(max(mic_e, 1e-12) / out_e)
        e_v = 10 * math.log10(max(mic_v, 1e-12) / max(out_v, 1e-13))
        step = self.frame / self.rate
        if clipped:
            gain_db = min(0.0, e_db - CLIPPED_TARGET_DB, self._to_rest_db(out_e))
        elif mic_e <= max(self._noise * 4.0, level(-60.0)):
            gain_db = min(0.0, e_db)                   # no echo to speak of
        elif e_v < self._floor_db - NEAR_END_MARGIN_DB and \
                out_v > max(self._residual, self._noise_v) * _RESIDUAL_MARGIN and \
                (not tail or mic_e > self._echo_env) and \
                self._not_the_echo(follows, coherent, out_v):
            self._floor_db -= FLOOR_LEAK_DB_S * step   # the user: passes
            self._residual *= self._residual_fall
            gain_db = min(0.0, e_db)
        else:                                          # echo: down to the target
            if e_v >= self._floor_db - NEAR_END_MARGIN_DB:
                self._floor_db += (min(e_v, 60.0) - self._floor_db) * step / FLOOR_S
                self._hold_residual(out_v)
            gain_db = min(0.0, e_db - TARGET_DB, self._to_rest_db(out_e))
        return 1.0 if gain_db >= 0.0 else float(10 ** (gain_db / 20))

    def _not_the_echo(self, follows: float, coherent: float, out_v: float) -> bool:
        """Whether a frame that looks like the user by its energies (its voice-weighted
        output `out_v`) is the user by its correlation with the echo estimate
        (`follows`), its own and the frames' before it, and by how much of its mic the
        estimate explains (`coherent`); counts it in the running share that tells a
        changed echo."""
        strong = abs(follows) >= CHANGED_FOLLOWS
        self._changed += (strong - self._changed) / CHANGED_FRAMES
        held = max(self._residual, self._noise_v)
        burst = self._followed >= BURST_FRAMES and out_v < held * _BURST_MARGIN
        explained = not self.grown and coherent >= COHERENT_MIN and \
            out_v < held * _COHERENT_MARGIN
        return abs(follows) < FOLLOWS_MAX and not burst and not explained

    def _hold_residual(self, out_v: float) -> None:
        """Hold the voice-weighted energy of an echo frame's output as the residual to
        expect."""
        self._residual = max(out_v, self._residual * self._residual_fall)

    def _to_rest_db(self, out_e: float) -> float:
        """The gain (dB) that brings an output frame down to the room at rest (0 before
        the room has been heard at rest)."""
        return 0.0 if self._noise <= 0.0 else 10 * math.log10(self._noise / out_e)
