# gnuplot script for bench/soak.sh: per-segment time and daemon RSS against
# tokens streamed.  gnuplot -e "csv='soak.csv'; out='docs/soak.png'" bench/soak.gp
if (!exists("csv")) csv = 'soak.csv'
if (!exists("out")) out = 'docs/soak.png'
set terminal pngcairo size 900,500 noenhanced
set output out
set datafile separator ','
set key autotitle columnhead top left
set title 'infinid soak: one stream, one segment per push'
set xlabel 'tokens streamed'
set ylabel 'ms per segment (window mean)'
set y2label 'daemon VmRSS (MiB)'
set ytics nomirror
set y2tics
set yrange [0:*]
stats csv using ($5/1024) name 'R' nooutput
set y2range [0:R_max*1.3]
set grid
plot csv using 2:3 with lines lw 2 title 'ms/segment', \
     csv using 2:($5/1024) axes x1y2 with lines lw 2 title 'RSS MiB'
