import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from 'chart.js';
import { useEffect, useRef } from 'react';
import type { ChartSeries } from '../lib/usage.ts';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const palette = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4d7c0f', '#be185d'];

export interface StackedBarsProps {
  title: string;
  series: ChartSeries;
  format: (value: number) => string;
}

/**
 * Stacked bars per day and group, drawn by Chart.js, with the same numbers
 * in a table below (for screen readers, keyboard users and copying).
 */
export function StackedBars({ title, series, format }: StackedBarsProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const dark = typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;

  useEffect(() => {
    if (!canvas.current) return;
    const text = dark ? '#e5e7eb' : '#1f2937';
    const grid = dark ? '#374151' : '#e5e7eb';
    const chart = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: series.labels.map((day) => day.slice(5)),
        datasets: series.datasets.map((dataset, index) => ({
          label: dataset.label,
          data: dataset.data,
          backgroundColor: palette[index % palette.length],
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true, ticks: { color: text }, grid: { color: grid } },
          y: {
            stacked: true,
            beginAtZero: true,
            ticks: { color: text, callback: (value) => format(Number(value)) },
            grid: { color: grid },
          },
        },
        plugins: {
          legend: { labels: { color: text } },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${format(Number(item.raw))}` } },
        },
      },
    });
    return () => chart.destroy();
  }, [series, format, dark]);

  const empty = series.datasets.length === 0;
  return (
    <figure className='chart' data-testid={`chart-${title}`}>
      <figcaption>{title}</figcaption>
      {empty ? <p className='empty'>No usage in these days yet.</p> : (
        <div className='chart-canvas'>
          <canvas
            ref={canvas}
            role='img'
            aria-label={`${title}, stacked by ${series.datasets.map((d) => d.label).join(', ')}`}
          />
        </div>
      )}
      {!empty && (
        <details>
          <summary>Show the numbers</summary>
          <div className='table-scroll'>
            <table>
              <caption className='visually-hidden'>{title} per day</caption>
              <thead>
                <tr>
                  <th scope='col'>day</th>
                  {series.datasets.map((dataset) => <th scope='col' key={dataset.label}>{dataset.label}</th>)}
                </tr>
              </thead>
              <tbody>
                {series.labels.map((day, index) => (
                  <tr key={day}>
                    <th scope='row'>{day}</th>
                    {series.datasets.map((dataset) => <td key={dataset.label}>{format(dataset.data[index])}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
    </figure>
  );
}
