// Synchronized multi-angle review (Fieldcap console). Every video has its corrected capture
// start (server clock, Unix ms) in data-start-ms; the scrubber's value is milliseconds from the
// incident's first corrected instant (data-origin-ms). Seeking puts every video at the same
// wall-clock instant: currentTime = (origin + t - start) / 1000, clamped to the clip.
(function () {
  'use strict';
  var review = document.getElementById('review');
  if (!review) { return; }
  var scrubber = document.getElementById('scrubber');
  var clock = document.getElementById('clock');
  var playhead = document.getElementById('playhead');
  var origin = Number(scrubber.dataset.originMs);
  var span = Number(scrubber.max);
  var videos = Array.prototype.slice.call(document.querySelectorAll('video.angle'));
  var timer = null;
  var playStartedAt = 0; // performance.now() when play began
  var playFrom = 0;      // scrubber value when play began

  // Positions and colours from data attributes (the page's CSP allows no inline styles).
  Array.prototype.forEach.call(document.querySelectorAll('[data-left-pct]'), function (el) {
    el.style.left = el.dataset.leftPct + '%';
    if (el.dataset.widthPct) { el.style.width = el.dataset.widthPct + '%'; }
  });
  Array.prototype.forEach.call(document.querySelectorAll('[data-colour]'), function (el) {
    el.style.setProperty('--c', el.dataset.colour);
  });
  Array.prototype.forEach.call(document.querySelectorAll('.obs-mark'), function (el) {
    el.style.left = ((Number(el.dataset.atMs) - origin) * 100 / Math.max(span, 1)) + '%';
  });

  function target(video, t) {
    var start = Number(video.dataset.startMs);
    var secs = (origin + t - start) / 1000;
    var dur = isFinite(video.duration) ? video.duration : (Number(video.dataset.endMs) - start) / 1000;
    return { secs: Math.min(Math.max(secs, 0), Math.max(dur, 0)), inside: secs >= 0 && secs <= dur };
  }

  function show(t) {
    clock.textContent = '+' + (t / 1000).toFixed(3) + ' s';
    playhead.style.left = (t * 100 / Math.max(span, 1)) + '%';
  }

  // Seeks every video to the instant `t` ms from the origin.
  function seek(t) {
    t = Math.min(Math.max(Number(t), 0), span);
    scrubber.value = String(t);
    show(t);
    videos.forEach(function (v) {
      var g = target(v, t);
      v.classList.toggle('outside', !g.inside);
      if (Math.abs(v.currentTime - g.secs) > 0.001) { v.currentTime = g.secs; }
    });
    return t;
  }

  function tick() {
    var t = playFrom + (performance.now() - playStartedAt);
    if (t >= span) { pause(); seek(span); return; }
    scrubber.value = String(t);
    show(t);
    videos.forEach(function (v) {
      var g = target(v, t);
      v.classList.toggle('outside', !g.inside);
      if (g.inside && v.paused) { v.currentTime = g.secs; v.play().catch(function () {}); }
      if (!g.inside && !v.paused) { v.pause(); }
      // Keep each video within a frame of the shared clock.
      if (g.inside && Math.abs(v.currentTime - g.secs) > 0.08) { v.currentTime = g.secs; }
    });
  }

  function play() {
    if (timer) { return; }
    playFrom = Number(scrubber.value);
    playStartedAt = performance.now();
    timer = setInterval(tick, 50);
  }

  function pause() {
    if (timer) { clearInterval(timer); timer = null; }
    videos.forEach(function (v) { v.pause(); });
  }

  scrubber.addEventListener('input', function () { pause(); seek(scrubber.value); });
  document.getElementById('play').addEventListener('click', play);
  document.getElementById('pause').addEventListener('click', pause);
  videos.forEach(function (v) { v.addEventListener('loadedmetadata', function () { seek(scrubber.value); }); });

  // For tests and keyboard users: the same as moving the scrubber.
  window.fieldcapReview = {
    seek: function (t) { pause(); return seek(t); },
    play: play,
    pause: pause,
    origin: origin,
    span: span
  };
  seek(0);
})();
